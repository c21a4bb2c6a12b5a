package forward_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
)

// Hostile tenants (issue #10): nothing one org asks changes what another
// is answered, or tells it what the first asked.

// blackhole answers every question but those under blackhole.example.,
// which it never answers: a name whose servers are gone, which any asker
// can pick on purpose. It counts the questions per lowercased name.
type blackhole struct {
	*testUpstream
	mu    sync.Mutex
	names map[string]int
}

func startBlackhole(t *testing.T) *blackhole {
	b := &blackhole{names: map[string]int{}}
	b.testUpstream = startUpstream(t, func(proto string, req *dns.Msg) *dns.Msg {
		name := req.Question[0].Name
		b.mu.Lock()
		b.names[strings.ToLower(name)]++
		b.mu.Unlock()
		if strings.HasSuffix(strings.ToLower(name), ".blackhole.example.") {
			return nil
		}
		r := new(dns.Msg)
		r.SetReply(req)
		switch req.Question[0].Qtype {
		case dns.TypeA:
			r.Answer = []dns.RR{mustRR("%s 300 IN A 192.0.2.1", name)}
		case dns.TypeNS:
			r.Answer = []dns.RR{mustRR("%s 300 IN NS a.root-servers.net.", name)}
		}
		return r
	})
	return b
}

func (b *blackhole) asked(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.names[strings.ToLower(name)]
}

// Timeouts on names that are never answered are no sign that the upstream
// is gone: its probe is answered, and it stays in service for everyone.
// (Before, three timeouts in a row made it dead for every org.)
func TestNeverAnsweredNamesDoNotMakeAnUpstreamDead(t *testing.T) {
	up := startBlackhole(t)
	rec := newRecorder()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Timeout: 200 * time.Millisecond, Observer: rec})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Forward(context.Background(), "attacker", question(sprintf("n%d.blackhole.example.", i), dns.TypeA)); err == nil {
				t.Errorf("a never-answered name was answered")
			}
		}()
	}
	wg.Wait()
	waitProbes(t, rec, up.addr, true)
	// The victim's questions get a deadline of their own, 2 s: the 200 ms
	// timeout is for the flood above, and an answer slowed by the race
	// detector on a busy machine is still an answer.
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := f.Forward(ctx, "victim", question(sprintf("v%d.example.", i), dns.TypeA))
		cancel()
		if err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("victim's question %d: %v %v", i, r, err)
		}
	}
	if n := up.asked("."); n != 1 {
		t.Errorf("the upstream was probed %d times, want once (at most one probe a second)", n)
	}
}

// Each org has its own cache: another org's earlier lookup reaches the
// upstream afresh (no cached answer telling what was asked and when), and
// every asker gets its own letter case in the question and the owner names.
func TestCacheIsPerOrgAndAnswersInTheAskersCase(t *testing.T) {
	up := startBlackhole(t)
	rec := newRecorder()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes, Observer: rec})
	owner := func(r *dns.Msg) string { return r.Answer[0].Header().Name }

	r := forwardAs(t, f, "alpha", question("Shared.Example.COM.", dns.TypeA))
	if owner(r) != "Shared.Example.COM." {
		t.Errorf("alpha's answer is owned by %s", owner(r))
	}
	r = forwardAs(t, f, "beta", question("sHARED.eXAMPLE.com.", dns.TypeA))
	if n := up.asked("shared.example.com."); n != 2 {
		t.Errorf("upstream asked %d times, want 2: beta must not get alpha's cached answer", n)
	}
	if owner(r) != "sHARED.eXAMPLE.com." || r.Question[0].Name != "sHARED.eXAMPLE.com." {
		t.Errorf("beta's answer: question %s, owner %s; want beta's case sHARED.eXAMPLE.com.", r.Question[0].Name, owner(r))
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != 300 {
		t.Errorf("beta's TTL %d, want the upstream's fresh 300", ttl)
	}
	// Within an org the cache serves, in the asker's case.
	r = forwardAs(t, f, "alpha", question("shared.example.com.", dns.TypeA))
	if n := up.asked("shared.example.com."); n != 2 || owner(r) != "shared.example.com." {
		t.Errorf("alpha again: upstream asked %d times (want 2), owner %s (want shared.example.com.)", n, owner(r))
	}
	if rec.hits != 1 {
		t.Errorf("%d cache hits, want 1", rec.hits)
	}
}

// txtOfSize answers every TXT question with records adding up to about
// size bytes, and other questions as answerA does.
func txtOfSize(size int) handler {
	return func(proto string, req *dns.Msg) *dns.Msg {
		if req.Question[0].Qtype != dns.TypeTXT {
			return answerA(300)(proto, req)
		}
		r := new(dns.Msg)
		r.SetReply(req)
		name := req.Question[0].Name
		for n := 0; n < size; n += 200 {
			r.Answer = append(r.Answer, mustRR("%s 300 IN TXT %q", name, strings.Repeat("x", 180)))
		}
		return r
	}
}

// The cache is bounded in bytes, whatever the number of entries.
func TestCacheIsBoundedInBytes(t *testing.T) {
	up := startUpstream(t, txtOfSize(1000))
	const limit = 10000
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: limit})
	for i := range 40 {
		forwardOK(t, f, question(sprintf("t%d.example.", i), dns.TypeTXT))
		if _, bytes := f.CacheUsage(); bytes > limit {
			t.Fatalf("after %d replies the cache holds %d bytes, over its bound %d", i+1, bytes, limit)
		}
	}
	entries, bytes := f.CacheUsage()
	if entries < 5 || bytes < limit/2 {
		t.Errorf("cache holds %d replies, %d bytes; want it used up to near its %d bytes", entries, bytes, limit)
	}
}

// A reply longer than MaxCacheable is forwarded every time, not cached.
func TestLongRepliesAreNotCached(t *testing.T) {
	up := startUpstream(t, txtOfSize(1000))
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes, MaxCacheable: 800})
	for range 2 {
		forwardOK(t, f, question("long.example.", dns.TypeTXT))
	}
	if n := up.count("udp"); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (the reply is too long to cache)", n)
	}
	if n := f.CacheLen(); n != 0 {
		t.Errorf("cache holds %d replies, want none", n)
	}
	forwardOK(t, f, question("short.example.", dns.TypeA)) // no TXT: a short reply
	if n := f.CacheLen(); n != 1 {
		t.Errorf("cache holds %d replies, want the short one", n)
	}
}

// An org filling the cache evicts its own entries, not another org's
// that holds less.
func TestOneOrgCannotEvictAnothersEntries(t *testing.T) {
	up := startUpstream(t, txtOfSize(400))
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: 8000})
	for i := range 3 {
		forwardAs(t, f, "beta", question(sprintf("b%d.example.", i), dns.TypeTXT))
	}
	for i := range 100 {
		forwardAs(t, f, "alpha", question(sprintf("a%d.example.", i), dns.TypeTXT))
	}
	if n, _ := f.OrgCacheUsage("beta"); n != 3 {
		t.Errorf("beta has %d cached replies after alpha's flood, want its 3", n)
	}
	asked := up.count("udp")
	for i := range 3 {
		forwardAs(t, f, "beta", question(sprintf("b%d.example.", i), dns.TypeTXT))
	}
	if n := up.count("udp") - asked; n != 0 {
		t.Errorf("beta's names went upstream %d times again, want 0 (cached)", n)
	}
	if n, bytes := f.OrgCacheUsage("alpha"); n == 0 || bytes > 8000 {
		t.Errorf("alpha holds %d replies, %d bytes", n, bytes)
	}
}

// An org has a bounded share of questions waiting on the upstreams: one
// that fills its share is refused more at once (ErrBusy), and another org
// is not refused, even when the flooders have filled the total.
func TestInFlightShareIsPerOrg(t *testing.T) {
	up := startBlackhole(t)
	rec := newRecorder()
	const perOrg = 4
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Timeout: 5 * time.Second,
		MaxInFlight: 2 * perOrg, MaxInFlightPerOrg: perOrg, Observer: rec})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var refused atomic.Int32
	flood := func(org string) {
		for i := range perOrg {
			wg.Add(1)
			go func() {
				defer wg.Done()
				qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
				defer qcancel()
				_, err := f.Forward(qctx, org, question(sprintf("%s%d.blackhole.example.", org, i), dns.TypeA))
				if errors.Is(err, forward.ErrBusy) {
					refused.Add(1)
				}
			}()
		}
	}
	flood("alpha")
	flood("gamma") // alpha and gamma together hold the total
	deadline := time.Now().Add(5 * time.Second)
	for f.InFlight("alpha") != perOrg || f.InFlight("gamma") != perOrg {
		if time.Now().After(deadline) {
			t.Fatalf("in flight: alpha %d, gamma %d; want %d each", f.InFlight("alpha"), f.InFlight("gamma"), perOrg)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d of the first %d questions per org refused", n, perOrg)
	}
	start := time.Now()
	_, err := f.Forward(context.Background(), "alpha", question("more.blackhole.example.", dns.TypeA))
	if !errors.Is(err, forward.ErrBusy) || time.Since(start) > time.Second {
		t.Errorf("alpha's question past its share: %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), `"alpha"`) {
		t.Errorf("error %q does not name the org", err)
	}
	// beta has nothing in flight: its guaranteed minimum admits it.
	r := forwardAs(t, f, "beta", question("www.example.", dns.TypeA))
	if len(r.Answer) != 1 {
		t.Errorf("beta's answer %v", r)
	}
	if rec.busy != 1 {
		t.Errorf("observer saw %d refusals, want 1", rec.busy)
	}
	cancel()
}

// An upstream that answers in its own letter case (lowercase here) is
// answered to the asker in the asker's case; other owner names (a CNAME's
// target) are left as they are.
func TestUpstreamsCaseIsReplacedByTheAskers(t *testing.T) {
	up := startUpstream(t, func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetReply(req)
		r.Question[0].Name = strings.ToLower(r.Question[0].Name)
		r.Answer = []dns.RR{mustRR("www.example.com. 60 IN CNAME Edge.Example.NET."), mustRR("Edge.Example.NET. 60 IN A 192.0.2.7")}
		return r
	})
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, CacheSize: forward.DefaultCacheSize, CacheBytes: forward.DefaultCacheBytes})
	for _, name := range []string{"WWW.example.COM.", "www.EXAMPLE.com."} { // fresh, then cached
		r := forwardOK(t, f, question(name, dns.TypeA))
		if r.Question[0].Name != name || r.Answer[0].Header().Name != name || r.Answer[1].Header().Name != "Edge.Example.NET." {
			t.Errorf("asked %s: question %s, owners %s and %s", name, r.Question[0].Name, r.Answer[0].Header().Name, r.Answer[1].Header().Name)
		}
	}
	if n := up.count("udp"); n != 1 {
		t.Errorf("upstream asked %d times, want once", n)
	}
}
