package zones

import (
	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// The apex records. Both zones name one server, _api.internal., which is
// every org's <network>::3: the address clients already query.
const (
	nsName     = "_api.internal."
	mboxName   = "hostmaster.internal."
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// soa is the zone's SOA with the given owner. Its serial is the asker's
// org's own serial, which moves with that org's changes only and so says
// nothing about other orgs. TTL and MINIMUM are both the negative TTL:
// resolvers cache a negative answer for the smaller of the two (RFC 2308),
// and the SOA is one RRset, so it has the same TTL in every section.
func soa(owner string, org *registry.Org, cfg Config) *dns.SOA {
	return &dns.SOA{
		Hdr:     header(owner, dns.TypeSOA, cfg.NegTTL),
		Ns:      nsName,
		Mbox:    mboxName,
		Serial:  org.Serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  cfg.NegTTL,
	}
}

// ns is the apex NS record with the given owner.
func ns(owner string, cfg Config) *dns.NS {
	return &dns.NS{
		Hdr: header(owner, dns.TypeNS, cfg.TTL),
		Ns:  nsName,
	}
}
