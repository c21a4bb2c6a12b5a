package zones

import (
	"net/netip"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// DefaultTTL is the positive TTL when Config.TTL is zero. Captured answers
// from the system this replaces carry TTL 5, and clients poll with that in mind.
const DefaultTTL = 5

// Config is the server's answer settings. Zero fields take their defaults,
// so a zero Config is usable.
type Config struct {
	TTL    uint32 // positive TTL, seconds (0: DefaultTTL)
	NegTTL uint32 // negative TTL = SOA TTL and SOA MINIMUM (0: TTL)
	// ServerRegion is the server's own --region: the asker's region when no
	// machine or peer owns the source address.
	ServerRegion string
}

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NegTTL == 0 {
		c.NegTTL = c.TTL
	}
	return c
}

// Asker is who sent the query, as dnsserver worked it out.
type Asker struct {
	// Org is the asker's org. Answer refuses in-zone names when it is nil.
	Org *registry.Org
	// Addr is the source address: it seeds the tie-break hash and is what
	// _whoami reports.
	Addr netip.Addr
	// Owner is the machine or peer of Org that holds Addr; zero if none.
	Owner registry.Owner
}

// Region is the asker's region: the region of the machine or peer owning
// the source address, else the server's own region (cfg.ServerRegion).
// It may be "" when neither is known; every distance then counts as equal.
func (a Asker) Region(cfg Config) string {
	if r := a.Owner.Region(); r != "" {
		return r
	}
	return cfg.ServerRegion
}

// Result is the answer to one question.
type Result struct {
	Rcode  int // dns.RcodeSuccess, dns.RcodeNameError or dns.RcodeRefused
	Answer []dns.RR
	Ns     []dns.RR
	// InZone is true when the name lies in internal. or flycast.: the answer
	// is authoritative (set AA). When false the other fields mean nothing
	// and the caller forwards or refuses the query.
	InZone bool
}
