package forward

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
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

const (
	// downFor is how long a failed upstream moves to the back of the line,
	// so a dead first upstream does not cost every query its share of the
	// timeout.
	downFor = 5 * time.Second
	// deadAfter consecutive failures make an upstream dead: it is then
	// asked by one query per probeEvery, and the others fail at once
	// rather than each waiting out the timeout. One lost packet does not
	// make an upstream dead; an upstream that is gone does, quickly.
	deadAfter  = 3
	probeEvery = time.Second
)

// upstream is one resolver and how it has been doing.
type upstream struct {
	addr      string
	fails     atomic.Int32 // consecutive failures
	downUntil atomic.Int64 // unix nanoseconds
	nextProbe atomic.Int64 // unix nanoseconds; for dead upstreams
}

func (u *upstream) failed(now time.Time) {
	if u.fails.Add(1) >= deadAfter {
		// Dead from now on: the next query to try it is a second away.
		u.nextProbe.Store(now.Add(probeEvery).UnixNano())
	}
	u.downUntil.Store(now.Add(downFor).UnixNano())
}

func (u *upstream) succeeded() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
	if u.downUntil.Load() != 0 {
		u.downUntil.Store(0)
	}
}

// isDown reports a failure in the last downFor with no success since.
func (u *upstream) isDown(now time.Time) bool { return now.UnixNano() < u.downUntil.Load() }

// mayAsk reports whether a query may go to u now: always, unless u is
// dead, in which case one caller per probeEvery wins the right to probe.
func (u *upstream) mayAsk(now time.Time) bool {
	if u.fails.Load() < deadAfter || !u.isDown(now) {
		return true
	}
	next := u.nextProbe.Load()
	if now.UnixNano() < next {
		return false
	}
	return u.nextProbe.CompareAndSwap(next, now.Add(probeEvery).UnixNano())
}
