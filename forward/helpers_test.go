package forward_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
)

var sprintf = fmt.Sprintf

func newForwarder(t *testing.T, cfg forward.Config) *forward.Forwarder {
	t.Helper()
	f, err := forward.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	return m
}

// testOrg is the org forwardOK asks for.
const testOrg = "acme"

func forwardOK(t *testing.T, f *forward.Forwarder, req *dns.Msg) *dns.Msg {
	t.Helper()
	return forwardAs(t, f, testOrg, req)
}

func forwardAs(t *testing.T, f *forward.Forwarder, org string, req *dns.Msg) *dns.Msg {
	t.Helper()
	// No deadline: the forwarder applies its own Config.Timeout.
	r, err := f.Forward(context.Background(), org, req)
	if err != nil {
		t.Fatalf("Forward %s: %v", req.Question[0].Name, err)
	}
	if r.Id != req.Id {
		t.Errorf("reply id %d, want the request's %d", r.Id, req.Id)
	}
	return r
}

// fakeClock is a settable clock for cache tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is a forward.Observer that counts what it is told.
type recorder struct {
	mu             sync.Mutex
	hits, misses   int
	upstreamErrors map[string]int
	upstreamOK     map[string]int
	probes         []probe
	busy           int
}

type probe struct {
	upstream string
	alive    bool
}

func newRecorder() *recorder {
	return &recorder{upstreamErrors: map[string]int{}, upstreamOK: map[string]int{}}
}

func (r *recorder) ObserveUpstream(up, proto string, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.upstreamErrors[up+"/"+proto]++
	} else {
		r.upstreamOK[up+"/"+proto]++
	}
}

func (r *recorder) ObserveCache(hit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hit {
		r.hits++
	} else {
		r.misses++
	}
}

func (r *recorder) ObserveProbe(up string, alive bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probes = append(r.probes, probe{up, alive})
}

func (r *recorder) ObserveBusy() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy++
}

// probed returns the verdicts of the probes of up so far.
func (r *recorder) probed(up string) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bool
	for _, p := range r.probes {
		if p.upstream == up {
			out = append(out, p.alive)
		}
	}
	return out
}
