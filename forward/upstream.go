package forward

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultPort is the port of an upstream given without one.
const DefaultPort = 53

// ParseUpstream checks an upstream address: an IP with an optional port
// ("192.0.2.53", "[2001:db8::53]:5353"). Host names are refused: resolving
// them would need a resolver, and meshdns is the resolver.
func ParseUpstream(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("upstream %q: port 0", s)
		}
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, DefaultPort).String(), nil
	}
	return "", fmt.Errorf("upstream %q: want an IP address with an optional port, e.g. 192.0.2.53, 192.0.2.53:53 or [2001:db8::53]:53", s)
}

// An upstream's health is judged by probes of its own, never by how the
// askers' questions fare: a question can time out because of the name
// asked (a zone whose servers never answer, chosen by some asker on
// purpose), and one org's such questions must not make an upstream dead
// for everyone. A failed exchange only makes the upstream suspect: it is
// probed, and only a failed probe makes it dead. A dead upstream is not
// asked; it is probed again at most once per probeEvery, while queries
// arrive, until a probe is answered.
const (
	probeEvery = time.Second
	// probeTries probes of probeTimeout each are sent before an upstream
	// is judged dead, so one lost packet does not make it so.
	probeTries   = 2
	probeTimeout = 500 * time.Millisecond
)

// probeName and probeType are the probe's question: the root's name
// servers, which every recursive resolver answers (usually from its
// cache) and no asker can make unanswerable.
const (
	probeName = "."
	probeType = dns.TypeNS
)

// upstream is one resolver and what its probes found.
type upstream struct {
	addr      string
	dead      atomic.Bool
	probing   atomic.Bool
	lastProbe atomic.Int64 // unix nanoseconds when the last probe started
}

// suspect starts a probe of u in the background unless one runs or one
// started less than probeEvery ago.
func (f *Forwarder) suspect(u *upstream) {
	now := f.now().UnixNano()
	last := u.lastProbe.Load()
	if now-last < int64(probeEvery) || !u.probing.CompareAndSwap(false, true) {
		return
	}
	u.lastProbe.Store(now)
	go func() {
		alive := f.probe(u)
		u.dead.Store(!alive)
		f.obs.ObserveProbe(u.addr, alive)
		u.probing.Store(false)
	}()
}

// probe asks u for the root's NS records, up to probeTries times. Any
// reply to the question, whatever its rcode, shows u is there and
// answering; what it answers for a name is the query's business.
func (f *Forwarder) probe(u *upstream) bool {
	for range probeTries {
		q := new(dns.Msg)
		q.SetQuestion(probeName, probeType)
		q.Id = dns.Id()
		q.RecursionDesired = true
		q.SetEdns0(udpSize, false)
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		c := &dns.Client{Net: "udp", UDPSize: udpSize}
		r, _, err := c.ExchangeContext(ctx, q, u.addr)
		cancel()
		if err == nil && checkReply(q, r) == nil {
			return true
		}
	}
	return false
}
