package forward

import (
	"errors"
	"sync"
)

// Defaults of the in-flight shares (Config.MaxInFlight and
// Config.MaxInFlightPerOrg). An org's questions wait on the upstreams at
// most --forward-timeout each, so 250 in flight is some 125 upstream
// misses a second for a 2 s timeout and far more with a live upstream.
const (
	DefaultMaxInFlight       = 1000
	DefaultMaxInFlightPerOrg = 250
)

// ErrBusy is returned (wrapped) when the asker's org has its share of
// questions waiting on the upstreams already.
var ErrBusy = errors.New("the org's share of forwarded queries in flight is taken")

// inflight counts the questions waiting on upstreams, per org, and admits
// a new one when:
//
//   - the org has fewer than reserve in flight (a guaranteed minimum: no
//     other org's load can refuse it), or
//   - the org has fewer than perOrg in flight and all orgs together fewer
//     than max.
//
// So one org flooding with questions that never come back holds at most
// perOrg, and an org asking a few at a time is always admitted, whatever
// the others do. The total is bounded by max + reserve × (orgs asking).
type inflight struct {
	mu      sync.Mutex
	max     int
	perOrg  int
	reserve int
	total   int
	orgs    map[string]int
}

func newInflight(total, perOrg int) *inflight {
	perOrg = min(perOrg, total)
	return &inflight{max: total, perOrg: perOrg, reserve: max(1, perOrg/10), orgs: make(map[string]int)}
}

func (l *inflight) acquire(org string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.orgs[org]
	if n >= l.reserve && (n >= l.perOrg || l.total >= l.max) {
		return false
	}
	l.orgs[org] = n + 1
	l.total++
	return true
}

func (l *inflight) release(org string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.orgs[org] - 1; n > 0 {
		l.orgs[org] = n
	} else {
		delete(l.orgs, org)
	}
	l.total--
}

// count is the number in flight for org.
func (l *inflight) count(org string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.orgs[org]
}
