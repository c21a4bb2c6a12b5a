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
	// ReplySize is the most bytes the reply to this query may take (the
	// client's UDP size, or 65,535 over TCP); 0: no bound. An AAAA answer
	// for many machines then holds only the nearest that could fit, plus
	// one, so that the server still sees that it must cut (and set TC
	// over UDP); what it keeps is the same as from the whole list.
	ReplySize int
	// IgnoreHealth turns health-aware answers off (--health-aware=false):
	// every AAAA name and SRV answers all its started machines, whatever
	// their checks say.
	IgnoreHealth bool
}

// minAAAASize is the least an AAAA record takes in a reply: a compression
// pointer for its owner name, type, class, TTL, length and 16 bytes.
const minAAAASize = 2 + 10 + 16

// fitBound is how many AAAA records an answer needs to carry at most for
// the server to cut it exactly as it would cut the whole list: one more
// than could fit in ReplySize even after a 12-byte header. 0: no bound.
func (c Config) fitBound() int {
	if c.ReplySize <= 0 {
		return 0
	}
	return max(0, c.ReplySize-12)/minAAAASize + 1
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
	// InZone is true when the name lies in internal., flycast. or
	// a.a.d.f.ip6.arpa. (reverse names of fdaa::/16): the answer
	// is authoritative (set AA). When false the other fields mean nothing
	// and the caller forwards or refuses the query.
	InZone bool
	// Extra is the additional section: the AAAA records of SRV targets.
	Extra []dns.RR
	// FailOpen is set when the name has started machines but none is
	// healthy, so the answer holds all its started machines (SPEC §5).
	FailOpen bool
	// ListCut is set when the answer is a TXT list longer than
	// MaxListText, cut after the last whole entry that fits.
	ListCut bool
}
