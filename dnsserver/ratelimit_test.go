package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestRateLimitPerPrefix(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.RateLimit, cfg.ErrorRateLimit = 100, 5
	s.Reconfigure(cfg)
	s.clock.close() // the test moves time itself
	w := s.newWorker()
	ok := pack(t, query("web.internal.", dns.TypeAAAA))
	nx := pack(t, query("nope.internal.", dns.TypeAAAA))
	flooder := netip.MustParseAddr("fdaa:0:18:a7b:1::99") // same /64 as acmeSrc
	neighbour := netip.MustParseAddr("fdaa:0:18:ffff::1") // another /64 of the same org
	v4 := netip.MustParseAddr("192.0.2.7")
	v4same := netip.MustParseAddr("192.0.2.200")

	answered := func(src netip.Addr, raw []byte, n int) (got int) {
		for range n {
			if w.handle(raw, src, netip.Addr{}) != nil {
				got++
			}
		}
		return got
	}
	if got := answered(flooder, ok, 1000); got != 100 {
		t.Fatalf("flooding /64 got %d answers, want the burst of 100", got)
	}
	if got := answered(acmeSrc, ok, 10); got != 0 {
		t.Fatalf("same /64 as the flooder: %d answers, want 0", got)
	}
	if got := answered(neighbour, ok, 50); got != 50 {
		t.Fatalf("another /64 got %d of 50 answers during the flood", got)
	}
	// Error answers are limited more tightly, cached or not.
	if got := answered(neighbour, nx, 20); got != 5 {
		t.Fatalf("NXDOMAIN answers: %d, want 5", got)
	}
	// IPv4 sources are grouped by /24.
	answered(v4, ok, 100)
	if got := answered(v4same, ok, 10); got != 0 {
		t.Fatalf("same /24: %d answers", got)
	}
	// Tokens come back with time.
	s.clock.ns.Add(1e9)
	if got := answered(flooder, ok, 1000); got != 100 {
		t.Fatalf("after a second: %d answers, want 100", got)
	}
}

func TestRateLimitOff(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme")
	w := s.newWorker()
	raw := pack(t, query("nope.internal.", dns.TypeAAAA))
	for i := range 10000 {
		if w.handle(raw, acmeSrc, netip.Addr{}) == nil {
			t.Fatalf("query %d dropped with rate limiting off", i)
		}
	}
}
