package zones

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fuzzRegistry has something under every rule of the grammar.
const fuzzRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
apps/acme/empty {}
machines/acme/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:18:1::1","state":"started","metadata":{"role":"primary"}}
machines/acme/web/5683d9e7c01e18 {"region":"lhr","ip":"fdaa:0:18:1::2","state":"stopped","process_group":"cron"}
machines/acme/web/91857540f44d68 {"region":"zzz","ip":"fdaa:0:18:1::3","state":"started","checks":{"http":"critical"},"services":[{"name":"http","protocol":"tcp","port":80}]}
machines/acme/web/a1857540f44d68 {"region":"fra","ip":"fdaa:0:18:1::4","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":80}]}
machines/other/web/e784079b449483 {"region":"iad","ip":"fdaa:0:19:1::1","state":"started","services":[{"name":"ssh","protocol":"tcp","port":22}]}
peers/acme/laptop {"ip":"fdaa:0:18:9::1","region":"ams"}
regions/xyz {"lat":50.9,"lon":4.48}
`

// FuzzAnswer: whatever the name and type, Answer does not panic, every
// answer record is owned by the question's name, TXT strings fit in 255
// bytes, in-zone negative answers carry the zone's SOA, and nothing of
// the other org leaks.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		"web.internal.", "vms.web.internal.", "top3.nearest.of.web.internal.",
		"primary.role.kv._metadata.web.internal.", "_instances.internal.",
		"internal.", "web.flycast.", `a\.internal.`, "..internal.",
		"checks.web.internal.", "_tcp.web.internal.",
	} {
		f.Add([]byte(s), dns.TypeAAAA)
	}
	for _, s := range []string{"_http._tcp.web.internal.", "_ssh._tcp.web.internal.", "_http._udp.web.internal.", "_._tcp.web.internal."} {
		f.Add([]byte(s), dns.TypeSRV)
	}
	// Reverse names: a machine, the peer, ::3, the flycast address, the
	// other org's machine, empty non-terminals, the apex, outside fdaa::/16.
	for _, s := range []string{
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.0.0.0.8.1.0.0.0.0.0.0.A.A.D.F.IP6.ARPA.",
		"3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.",
		"5.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.",
		"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", "0.a.a.d.f.ip6.arpa.", "a.a.d.f.ip6.arpa.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	} {
		f.Add([]byte(s), dns.TypePTR)
	}
	snap := mustSnap(f, fuzzRegistry)
	a := askerAt(f, snap, "fdaa:0:18:9::1")
	f.Fuzz(func(t *testing.T, name []byte, qtype uint16) {
		q := dns.Question{Name: string(name), Qtype: qtype, Qclass: dns.ClassINET}
		res := Answer(snap, a, q, Config{TTL: 5, NegTTL: 7})
		if res.InZone != InZone(q.Name) {
			t.Fatalf("%q: InZone %v, Result.InZone %v", q.Name, InZone(q.Name), res.InZone)
		}
		if !res.InZone {
			if res.Answer != nil || res.Ns != nil {
				t.Fatalf("%q: records for a name outside the zones", q.Name)
			}
			return
		}
		for _, rr := range res.Answer {
			if rr.Header().Name != q.Name {
				t.Fatalf("%q: answer owner %q", q.Name, rr.Header().Name)
			}
			if rr.Header().Ttl != 5 && rr.Header().Rrtype != dns.TypeSOA {
				t.Fatalf("%q: TTL %d", q.Name, rr.Header().Ttl)
			}
			if txt, ok := rr.(*dns.TXT); ok {
				for _, s := range txt.Txt {
					if len(s) > 255 {
						t.Fatalf("%q: TXT string of %d bytes", q.Name, len(s))
					}
				}
			}
			if s := strings.TrimPrefix(rr.String(), rr.Header().String()); strings.Contains(s, "fdaa:0:19:") || strings.Contains(s, "e784079b449483") {
				t.Fatalf("%q: the other org leaks: %s", q.Name, s)
			}
		}
		switch res.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			if len(res.Answer) == 0 || res.Rcode == dns.RcodeNameError {
				if len(res.Answer) != 0 || len(res.Ns) != 1 {
					t.Fatalf("%q: negative answer with %d answers, %d authority", q.Name, len(res.Answer), len(res.Ns))
				}
				soa, ok := res.Ns[0].(*dns.SOA)
				if !ok || (soa.Hdr.Name != "internal." && soa.Hdr.Name != "flycast." && soa.Hdr.Name != "a.a.d.f.ip6.arpa.") || soa.Hdr.Ttl != 7 || soa.Minttl != 7 {
					t.Fatalf("%q: authority %v", q.Name, res.Ns[0])
				}
			}
		default:
			t.Fatalf("%q: rcode %d", q.Name, res.Rcode)
		}
	})
}
