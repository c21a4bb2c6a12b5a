package forward_test

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
)

func TestSecondQueryIsAnsweredFromTheCache(t *testing.T) {
	up := startUpstream(t, answerA(300))
	rec := newRecorder()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes, Observer: rec})
	forwardOK(t, f, question("example.com.", dns.TypeA))
	req := question("EXAMPLE.com.", dns.TypeA) // names are case-insensitive
	req.Id = 777
	r := forwardOK(t, f, req)
	if len(r.Answer) != 1 {
		t.Fatalf("cached reply %v", r)
	}
	if n := up.count("udp"); n != 1 {
		t.Errorf("upstream asked %d times, want once", n)
	}
	if rec.hits != 1 || rec.misses != 1 {
		t.Errorf("observer: %d hits, %d misses; want 1 and 1", rec.hits, rec.misses)
	}
	// Another type or the DO bit is another question.
	forwardOK(t, f, question("example.com.", dns.TypeAAAA))
	do := question("example.com.", dns.TypeA)
	do.SetEdns0(1232, true)
	forwardOK(t, f, do)
	if n := up.count("udp"); n != 3 {
		t.Errorf("upstream asked %d times, want 3", n)
	}
}

func TestCachedTTLsCountDown(t *testing.T) {
	up := startUpstream(t, answerA(300))
	clock := newFakeClock()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes})
	forward.SetClock(f, clock.now)
	forwardOK(t, f, question("example.com.", dns.TypeA))

	clock.advance(100*time.Second + 300*time.Millisecond)
	r := forwardOK(t, f, question("example.com.", dns.TypeA))
	if ttl := r.Answer[0].Header().Ttl; ttl != 200 {
		t.Errorf("TTL after 100.3s in the cache: %d, want 200", ttl)
	}
	clock.advance(200 * time.Second) // expired now
	r = forwardOK(t, f, question("example.com.", dns.TypeA))
	if ttl := r.Answer[0].Header().Ttl; ttl != 300 {
		t.Errorf("TTL after expiry: %d, want a fresh 300", ttl)
	}
	if n := up.count("udp"); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (again after expiry)", n)
	}
}

// A negative answer is cached for min(SOA TTL, SOA MINIMUM) (RFC 2308).
func TestNegativeAnswersAreCachedBySOAMinimum(t *testing.T) {
	up := startUpstream(t, func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetRcode(req, dns.RcodeNameError)
		r.Ns = []dns.RR{mustRR("example. 900 IN SOA ns.example. host.example. 1 7200 3600 1209600 60")}
		return r
	})
	clock := newFakeClock()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes})
	forward.SetClock(f, clock.now)
	forwardOK(t, f, question("nope.example.", dns.TypeA))
	clock.advance(59 * time.Second)
	r := forwardOK(t, f, question("nope.example.", dns.TypeA))
	if r.Rcode != dns.RcodeNameError || up.count("udp") != 1 {
		t.Fatalf("at 59s: rcode %s, upstream asked %d times; want a cached NXDOMAIN", dns.RcodeToString[r.Rcode], up.count("udp"))
	}
	if ttl := r.Ns[0].Header().Ttl; ttl != 841 {
		t.Errorf("SOA TTL after 59s: %d, want 841", ttl)
	}
	clock.advance(time.Second)
	forwardOK(t, f, question("nope.example.", dns.TypeA))
	if n := up.count("udp"); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (the negative answer expired at 60s)", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	up := startUpstream(t, answerA(300))
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: 3, CacheBytes: forward.DefaultCacheBytes})
	for _, name := range []string{"a.example.", "b.example.", "c.example.", "d.example.", "e.example."} {
		forwardOK(t, f, question(name, dns.TypeA))
	}
	if n := f.CacheLen(); n != 3 {
		t.Errorf("cache holds %d replies, want its bound 3", n)
	}
}

func TestZeroTTLIsNotCached(t *testing.T) {
	up := startUpstream(t, answerA(0))
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}})
	forwardOK(t, f, question("example.com.", dns.TypeA))
	forwardOK(t, f, question("example.com.", dns.TypeA))
	if n := up.count("udp"); n != 2 {
		t.Errorf("upstream asked %d times, want 2", n)
	}
}

// A zero cache bound turns the cache off, as the flags' 0 does
// (--forward-cache-size 0, --forward-cache-bytes 0); the defaults are
// the flags' defaults, not a meaning of 0. Negative bounds are refused.
func TestZeroCacheBoundTurnsTheCacheOff(t *testing.T) {
	for _, cfg := range []forward.Config{
		{},
		{CacheSize: 0, CacheBytes: forward.DefaultCacheBytes},
		{CacheSize: forward.DefaultCacheSize, CacheBytes: 0},
	} {
		up := startUpstream(t, answerA(300))
		rec := newRecorder()
		cfg.Upstreams, cfg.Observer = []string{up.addr}, rec
		f := newForwarder(t, cfg)
		forwardOK(t, f, question("example.com.", dns.TypeA))
		forwardOK(t, f, question("example.com.", dns.TypeA))
		if n := up.count("udp"); n != 2 || rec.hits != 0 {
			t.Errorf("CacheSize %d, CacheBytes %d: upstream asked %d times, %d cache hits; want 2 and 0 (no cache)",
				cfg.CacheSize, cfg.CacheBytes, n, rec.hits)
		}
	}
	for _, cfg := range []forward.Config{{CacheSize: -1}, {CacheBytes: -1}} {
		cfg.Upstreams = []string{"192.0.2.1"}
		if _, err := forward.New(cfg); err == nil || !strings.Contains(err.Error(), "must be 0 (no cache) or more") {
			t.Errorf("CacheSize %d, CacheBytes %d: error %v, want one saying 0 or more", cfg.CacheSize, cfg.CacheBytes, err)
		}
	}
}
