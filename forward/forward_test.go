package forward_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
)

func TestForwardAnswers(t *testing.T) {
	up := startUpstream(t, answerA(300))
	rec := newRecorder()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Observer: rec})
	r := forwardOK(t, f, question("Example.COM.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("reply %v", r)
	}
	if a, ok := r.Answer[0].(*dns.A); !ok || a.A.String() != "192.0.2.1" || a.Hdr.Ttl != 300 {
		t.Errorf("answer %v, want example.com. 300 A 192.0.2.1", r.Answer[0])
	}
	if rec.upstreamOK[up.addr+"/udp"] != 1 {
		t.Errorf("observer saw %v, want one udp exchange with %s", rec.upstreamOK, up.addr)
	}
}

// The upstream query has its own id and EDNS buffer, and keeps CD and DO.
func TestUpstreamQueryShape(t *testing.T) {
	seen := make(chan *dns.Msg, 1)
	up := startUpstream(t, func(proto string, req *dns.Msg) *dns.Msg {
		seen <- req.Copy()
		return answerA(60)(proto, req)
	})
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}})
	req := question("example.org.", dns.TypeA)
	req.CheckingDisabled = true
	req.SetEdns0(4096, true)
	forwardOK(t, f, req)
	got := <-seen
	opt := got.IsEdns0()
	if !got.RecursionDesired || !got.CheckingDisabled || opt == nil || !opt.Do() || opt.UDPSize() != 1232 {
		t.Errorf("upstream query %v: want RD, CD, EDNS 1232 with DO", got)
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	up := startUpstream(t, func(proto string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetReply(req)
		if proto == "udp" {
			r.Truncated = true
			return r
		}
		for i := range 40 {
			r.Answer = append(r.Answer, mustRR("big.example. 60 IN TXT \"record %02d with some padding to make it long\"", i))
		}
		return r
	})
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}})
	r := forwardOK(t, f, question("big.example.", dns.TypeTXT))
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("got TC=%v with %d answers, want the full 40 from TCP", r.Truncated, len(r.Answer))
	}
	if up.count("udp") != 1 || up.count("tcp") != 1 {
		t.Errorf("upstream saw udp=%d tcp=%d, want 1 and 1", up.count("udp"), up.count("tcp"))
	}
}

func TestDeadUpstreamGivesWayToTheNext(t *testing.T) {
	dead := deadUpstream(t)
	up := startUpstream(t, answerA(60))
	rec := newRecorder()
	const timeout = time.Second
	f := newForwarder(t, forward.Config{Upstreams: []string{dead, up.addr}, Observer: rec, Timeout: timeout})

	start := time.Now()
	r := forwardOK(t, f, question("one.example.", dns.TypeA))
	took := time.Since(start)
	if len(r.Answer) != 1 {
		t.Fatalf("reply %v, want the live upstream's answer", r)
	}
	// The dead upstream gets half of the time (two upstreams), then the
	// live one answers at once.
	if took < timeout/2-50*time.Millisecond || took > timeout {
		t.Errorf("took %v, want about %v (the dead upstream's share)", took, timeout/2)
	}
	if rec.upstreamErrors[dead+"/udp"] != 1 {
		t.Errorf("observer errors %v, want one timeout from %s", rec.upstreamErrors, dead)
	}
	// The timeout made the dead upstream suspect; its probe fails, and it
	// is not asked any more, so the next question does not pay for it.
	waitProbes(t, rec, dead, false)
	start = time.Now()
	forwardOK(t, f, question("two.example.", dns.TypeA))
	// Asking the dead upstream first would cost its share of the timeout,
	// 500 ms; 400 ms leaves room for a slow machine.
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("second query took %v; the upstream that failed its probe should not have been asked", took)
	}
}

func TestEveryUpstreamDeadFailsWithinTheTimeout(t *testing.T) {
	f := newForwarder(t, forward.Config{Upstreams: []string{deadUpstream(t), deadUpstream(t)}})
	const timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := f.Forward(ctx, testOrg, question("example.net.", dns.TypeA))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Forward succeeded with no live upstream")
	}
	// Ignoring the deadline would take the forwarder's own 2 s timeout.
	if took > timeout+700*time.Millisecond {
		t.Errorf("failed after %v, want within the %v timeout", took, timeout)
	}
	if !strings.Contains(err.Error(), "example.net.") {
		t.Errorf("error %q does not name the question", err)
	}
}

func TestUpstreamServfailTriesTheNext(t *testing.T) {
	bad := startUpstream(t, func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetRcode(req, dns.RcodeServerFailure)
		return r
	})
	good := startUpstream(t, answerA(60))
	f := newForwarder(t, forward.Config{Upstreams: []string{bad.addr, good.addr}})
	r := forwardOK(t, f, question("example.com.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("reply %v, want the second upstream's answer", r)
	}

	// With only a failing upstream its SERVFAIL stands (and is not cached).
	f = newForwarder(t, forward.Config{Upstreams: []string{bad.addr}})
	for range 2 {
		if r := forwardOK(t, f, question("example.com.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	}
	if n := bad.count("udp"); n != 3 {
		t.Errorf("failing upstream asked %d times, want 3 (SERVFAIL is not cached)", n)
	}
}

// A reply to some other question (a spoofing attempt, or a broken
// upstream) is an error, not an answer.
func TestReplyForAnotherQuestionIsRejected(t *testing.T) {
	up := startUpstream(t, func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetReply(req)
		r.Question[0].Name = "evil.example."
		r.Answer = []dns.RR{mustRR("evil.example. 60 IN A 203.0.113.66")}
		return r
	})
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Timeout: 500 * time.Millisecond})
	if r, err := f.Forward(context.Background(), testOrg, question("good.example.", dns.TypeA)); err == nil {
		t.Errorf("Forward accepted a reply for another name: %v", r)
	}
}

func TestNewRejectsBadUpstreams(t *testing.T) {
	if _, err := forward.New(forward.Config{}); err == nil {
		t.Error("New with no upstreams succeeded")
	}
	if _, err := forward.New(forward.Config{Upstreams: []string{"resolver.example:53"}}); err == nil {
		t.Error("New with a host name succeeded")
	}
}

func TestParseUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.53":          "192.0.2.53:53",
		"192.0.2.53:5353":     "192.0.2.53:5353",
		"2001:db8::53":        "[2001:db8::53]:53",
		"[2001:db8::53]:5353": "[2001:db8::53]:5353",
		"[::1]:53":            "[::1]:53",
	} {
		if got, err := forward.ParseUpstream(in); err != nil || got != want {
			t.Errorf("ParseUpstream(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "dns.example", "dns.example:53", "192.0.2.53:0", "192.0.2.53:x", "[2001:db8::53]"} {
		if got, err := forward.ParseUpstream(in); err == nil {
			t.Errorf("ParseUpstream(%q) = %q, want an error", in, got)
		}
	}
}

// An upstream whose probe fails is not asked: queries fail at once
// instead of each waiting out the timeout (the server's goroutines wait
// for them). It is probed again at most once a second while queries come,
// and asked again once a probe is answered.
func TestFailingUpstreamIsProbedNotWaitedFor(t *testing.T) {
	const timeout = 200 * time.Millisecond
	var down atomic.Bool
	down.Store(true)
	up := startUpstream(t, func(proto string, req *dns.Msg) *dns.Msg {
		if down.Load() {
			return nil
		}
		return answerA(60)(proto, req)
	})
	rec := newRecorder()
	clock := newFakeClock()
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Timeout: timeout, Observer: rec})
	forward.SetClock(f, clock.now)
	ask := func() (time.Duration, error) {
		start := time.Now()
		_, err := f.Forward(context.Background(), testOrg, question("example.com.", dns.TypeA))
		return time.Since(start), err
	}
	if took, err := ask(); err == nil || took < timeout-20*time.Millisecond {
		t.Fatalf("first query: %v after %v, want a timeout", err, took)
	}
	waitProbes(t, rec, up.addr, false)
	// Asking the upstream would take the 200 ms timeout.
	if took, err := ask(); err == nil || took > 150*time.Millisecond {
		t.Errorf("after a failed probe: %v after %v, want an error at once", err, took)
	}
	if n := len(rec.probed(up.addr)); n != 1 {
		t.Errorf("%d probes within the same second, want 1", n)
	}
	down.Store(false)
	clock.advance(time.Second)
	if took, err := ask(); err == nil || took > 150*time.Millisecond {
		t.Errorf("a second later: %v after %v, want an error at once (and a probe started)", err, took)
	}
	waitProbes(t, rec, up.addr, false, true)
	forwardOK(t, f, question("example.com.", dns.TypeA))
}

// waitProbes waits until up's probes have found want (in order).
func waitProbes(t *testing.T, rec *recorder, up string, want ...bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(rec.probed(up), want) {
		if time.Now().After(deadline) {
			t.Fatalf("probes of %s found %v, want %v", up, rec.probed(up), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One lost reply does not take an upstream out of service.
func TestOneFailureDoesNotMakeAnUpstreamDead(t *testing.T) {
	var n atomic.Int32
	up := startUpstream(t, func(proto string, req *dns.Msg) *dns.Msg {
		if n.Add(1) == 1 {
			return nil // the first query goes unanswered
		}
		return answerA(60)(proto, req)
	})
	f := newForwarder(t, forward.Config{Upstreams: []string{up.addr}, Timeout: 300 * time.Millisecond})
	if _, err := f.Forward(context.Background(), testOrg, question("lost.example.", dns.TypeA)); err == nil {
		t.Fatal("the unanswered query succeeded")
	}
	forwardOK(t, f, question("next.example.", dns.TypeA))
}
