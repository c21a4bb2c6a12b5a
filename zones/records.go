package zones

import (
	"net/netip"

	"github.com/miekg/dns"
)

// Record makers. Every record's owner is the question's name exactly as it
// was asked, so a client using 0x20 case randomisation sees its own bytes.

func header(owner string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// aaaaRecords makes one AAAA record per address from three allocations in
// all (records, address bytes, the RR slice), whatever the count.
func aaaaRecords(owner string, ttl uint32, rs []ranked) []dns.RR {
	recs := make([]dns.AAAA, len(rs))
	ips := make([]byte, 16*len(rs))
	out := make([]dns.RR, len(rs))
	for i, r := range rs {
		ip := ips[16*i : 16*i+16 : 16*i+16]
		b := r.m.IP.As16()
		copy(ip, b[:])
		recs[i] = dns.AAAA{Hdr: header(owner, dns.TypeAAAA, ttl), AAAA: ip}
		out[i] = &recs[i]
	}
	return out
}

// aaaaRecord makes a single AAAA answer.
func aaaaRecord(owner string, ttl uint32, a netip.Addr) []dns.RR {
	b := a.As16()
	return []dns.RR{&dns.AAAA{Hdr: header(owner, dns.TypeAAAA, ttl), AAAA: b[:]}}
}

// txtRecord makes the one TXT record of a list answer.
func txtRecord(owner string, ttl uint32, text string) []dns.RR {
	return []dns.RR{&dns.TXT{Hdr: header(owner, dns.TypeTXT, ttl), Txt: splitTXT(text)}}
}

// hinfoRecord is the minimal answer to an ANY query (RFC 8482 §4.2).
func hinfoRecord(owner string, ttl uint32) []dns.RR {
	return []dns.RR{&dns.HINFO{Hdr: header(owner, dns.TypeHINFO, ttl), Cpu: "RFC8482", Os: ""}}
}

// targetName is the SRV target of machine id of app: <id>.vm.<app>.internal.
func targetName(app, id string) string {
	return id + ".vm." + app + ".internal."
}

// srvRecords makes one SRV record per machine of rs (nearest first):
// weight 1, the machine's port, and as priority the rank of its distance
// class (0 for the nearest distance, 1 for the next distinct one, ...).
func srvRecords(owner string, ttl uint32, app, service, protocol string, rs []ranked) []dns.RR {
	recs := make([]dns.SRV, len(rs))
	out := make([]dns.RR, len(rs))
	prio := uint16(0)
	for i, x := range rs {
		if i > 0 && x.key>>32 != rs[i-1].key>>32 {
			prio++
		}
		port, _ := x.m.Offers(service, protocol)
		recs[i] = dns.SRV{Hdr: header(owner, dns.TypeSRV, ttl), Priority: prio, Weight: 1,
			Port: uint16(port), Target: targetName(app, x.m.ID)}
		out[i] = &recs[i]
	}
	return out
}

// targetRecords makes the AAAA records of the SRV targets of rs, for the
// additional section.
func targetRecords(ttl uint32, app string, rs []ranked) []dns.RR {
	out := make([]dns.RR, len(rs))
	for i, x := range rs {
		out[i] = aaaaRecord(targetName(app, x.m.ID), ttl, x.m.IP)[0]
	}
	return out
}
