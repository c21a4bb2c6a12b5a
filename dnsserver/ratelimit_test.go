package dnsserver

import (
	"hash/maphash"
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

	// answered counts real answers, not the TC=1 slips (TestRateLimitSlip).
	answered := func(src netip.Addr, raw []byte, n int) (got int) {
		for range n {
			if out := w.handle(raw, src, netip.Addr{}); out != nil && out[2]&0x02 == 0 {
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

// TestRateLimitSlip: past the limit, every slip-th query gets a TC=1 reply
// with its question and no records, and the others are dropped; the same
// for error answers past the error limit; with the slip off all are
// dropped.
func TestRateLimitSlip(t *testing.T) {
	for _, tc := range []struct {
		slip, want int
	}{{0, 50}, {2, 50}, {3, 33}, {1, 100}, {-1, 0}} {
		s := newTestServer(t, testRegistry(0), "acme")
		cfg := *s.cfg.Load()
		cfg.RateLimit, cfg.ErrorRateLimit, cfg.RateLimitSlip = 10, 5, tc.slip
		s.Reconfigure(cfg)
		s.clock.close()
		w := s.newWorker()
		src := netip.MustParseAddr("192.0.2.7")
		for _, c := range []struct {
			name         string
			m            *dns.Msg
			answered     int
			handle       func(raw []byte) []byte
			cookie, edns bool
		}{
			{name: "cached path", m: query("web.internal.", dns.TypeAAAA), answered: 10,
				handle: func(raw []byte) []byte { return w.handle(raw, src, netip.Addr{}) }},
			{name: "general path", m: query("web.internal.", dns.TypeAAAA), answered: 0,
				handle: func(raw []byte) []byte { return s.HandlePacket(Query{Raw: raw, Src: src, Transport: UDP}) }},
			{name: "error answers", m: query("nope.internal.", dns.TypeAAAA), answered: 5,
				handle: func(raw []byte) []byte { return w.handle(raw, netip.MustParseAddr("198.51.100.1"), netip.Addr{}) }},
			{name: "edns with a cookie", m: cookieQuery("WeB.internal.", "0102030405060708"), answered: 10, cookie: true, edns: true,
				handle: func(raw []byte) []byte { return w.handle(raw, netip.MustParseAddr("203.0.113.1"), netip.Addr{}) }},
		} {
			raw := pack(t, c.m)
			answered, slipped := 0, 0
			for i := range c.answered + 100 {
				out := c.handle(raw)
				if out == nil {
					continue
				}
				var r dns.Msg
				if err := r.Unpack(out); err != nil {
					t.Fatalf("slip %d, %s: reply %d does not unpack: %v", tc.slip, c.name, i, err)
				}
				if !r.Truncated {
					answered++
					continue
				}
				slipped++
				if r.Id != c.m.Id || len(r.Answer)+len(r.Ns) != 0 || len(r.Question) != 1 || r.Question[0] != c.m.Question[0] || r.Rcode != dns.RcodeSuccess {
					t.Fatalf("slip %d, %s: slipped reply %v", tc.slip, c.name, &r)
				}
				if (r.IsEdns0() != nil) != c.edns || len(out) > len(raw)+16 {
					t.Fatalf("slip %d, %s: slipped reply of %d bytes to %d: %v", tc.slip, c.name, len(out), len(raw), &r)
				}
				if c.cookie && replyCookie(t, &r)[:16] != "0102030405060708" {
					t.Fatalf("slip %d, %s: slipped reply without the client's cookie", tc.slip, c.name)
				}
			}
			if answered != c.answered || slipped != tc.want {
				t.Errorf("slip %d, %s: %d answered, %d slipped of 100 over the limit; want %d and %d", tc.slip, c.name, answered, slipped, c.answered, tc.want)
			}
		}
	}
}

// TestRateLimitSpoofedPrefixesKeepFlooderLimited: a flood of queries from
// distinct spoofed /24s (more than the table holds) must not reset the
// bucket of a flooder that used up its tokens, and the table stays bounded.
func TestRateLimitSpoofedPrefixesKeepFlooderLimited(t *testing.T) {
	clock := &coarseClock{}
	clock.ns.Store(1e18)
	rl := newRateLimiter(100, 10, -1, clock)
	flooder := netip.MustParseAddr("10.1.2.3")
	for range 100 {
		if !rl.allow(flooder, false) {
			t.Fatal("flooder limited within its burst")
		}
	}
	if rl.allow(flooder, false) {
		t.Fatal("flooder not limited after its burst")
	}
	const spoofed = 400000 // > 64 shards × 4096 buckets
	for i := range spoofed {
		// Every /24 with the flooder's third octet first (the old shard
		// choice), then all the others.
		a := netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 2 ^ byte(i>>16), 9})
		rl.allow(a, false)
		if i%1000 == 0 && rl.allow(flooder, false) {
			t.Fatalf("flooder's bucket reset after %d spoofed prefixes", i)
		}
	}
	if rl.allow(flooder, false) {
		t.Fatal("flooder's bucket reset by the spoofed prefixes")
	}
	n := 0
	for i := range rl.shards {
		n += len(rl.shards[i].buckets)
	}
	if n > len(rl.shards)*maxBucketsPerShard {
		t.Fatalf("%d buckets, more than the bound", n)
	}
	// Every part of the key counts: /24s differing only in the first
	// octets spread over the shards.
	used := map[uint64]bool{}
	for i := range 256 {
		k := prefixOf(netip.AddrFrom4([4]byte{byte(i), 0, 7, 1}), false)
		used[maphash.Comparable(rl.seed, k)%uint64(len(rl.shards))] = true
	}
	if len(used) < len(rl.shards)/2 {
		t.Fatalf("256 /24s differing in their first octet fall in %d shards", len(used))
	}
}
