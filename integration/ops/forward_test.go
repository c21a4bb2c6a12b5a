package ops

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
)

// Names outside .internal are answered through --upstream for askers in an
// org (here loopback, made a member of demo by --demo), cached, and
// retried over TCP when the upstream truncates.
func TestForwardingThroughTheBinary(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--upstream", up.addr, "--http", h))

	r := m.Dig(t, "a", "example.com")
	if r.Status != "NOERROR" || len(r.Answer) != 1 || !r.HasFlag("ra") || r.HasFlag("aa") {
		t.Fatalf("dig a example.com: %s, flags %v, answer %v; want the upstream's answer with RA and without AA", r.Status, r.Flags, r.Answer)
	}
	if a, ok := r.Answer[0].(*dns.A); !ok || a.A.String() != "192.0.2.1" {
		t.Errorf("answer %v, want 192.0.2.1", r.Answer[0])
	}
	r = m.Dig(t, "a", "EXAMPLE.com")
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl > 300 {
		t.Errorf("second answer %v", r.Answer)
	}
	if n := up.udp.Load(); n != 1 {
		t.Errorf("upstream asked %d times for example.com, want once (then cached)", n)
	}

	r = m.Dig(t, "txt", "big.example")
	if r.Status != "NOERROR" || len(r.Answer) != 30 || !r.RetriedTCP {
		t.Errorf("dig txt big.example: %s with %d answers (dig retried over TCP: %v), want all 30", r.Status, len(r.Answer), r.RetriedTCP)
	}
	if up.tcp.Load() != 1 {
		t.Errorf("upstream saw %d TCP queries, want 1 (meshdns's retry of the truncated reply)", up.tcp.Load())
	}

	ss := scrape(t, h)
	// example.com twice, big.example twice: over UDP (too big for dig's
	// 1232 bytes, so truncated by meshdns) and again over TCP.
	if got := value(ss, "meshdns_dns_forwarded_requests_total", "rcode=NOERROR"); got != 4 {
		t.Errorf("forwarded requests %v, want 4", got)
	}
	if got := value(ss, "meshdns_forward_cache_hits_total"); got != 2 {
		t.Errorf("forward cache hits %v, want 2", got)
	}
	if got := value(ss, "meshdns_forward_upstream_requests_total", "upstream="+up.addr, "proto=tcp", "result=ok"); got != 1 {
		t.Errorf("upstream TCP exchanges %v, want 1", got)
	}
}

// A dead upstream costs at most --forward-timeout, then SERVFAIL.
func TestDeadUpstreamGivesServfailWithinTheTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--upstream", deadUpstream(t), "--forward-timeout", timeout.String(), "--http", ""))
	start := time.Now()
	r, _, err := harness.Exchange(m.Addr(), harness.NewQuery("example.org", dns.TypeA, harness.QueryOptions{}), harness.QueryOptions{Timeout: 5 * time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", harness.Rcode(r))
	}
	// The 2 s default --forward-timeout, which a regression would fall
	// back to, is well past a second late.
	if took > timeout+time.Second {
		t.Errorf("SERVFAIL after %v, want within the %v forward timeout", took, timeout)
	}
}

// No open resolver: without --default-org a loopback asker is in no org,
// and is refused for every name, the upstream never asked.
func TestAskersWithoutOrgAreRefused(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Args("--upstream", up.addr, "--http", h))
	readyz(t, h, http.StatusOK, 10*time.Second)
	for _, name := range []string{"example.com", "web.internal"} {
		if r := m.Dig(t, "a", name); r.Status != "REFUSED" || len(r.Answer) != 0 {
			t.Errorf("dig a %s from 127.0.0.1: %s %v, want REFUSED", name, r.Status, r.Answer)
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Errorf("upstream asked %d times for an asker in no org", n)
	}
	if !slices.ContainsFunc(scrape(t, h), func(s series) bool {
		return s.name == "meshdns_dns_requests_total" && s.labels["rcode"] == "REFUSED" && s.value == 2
	}) {
		t.Error("the refusals are not counted")
	}
}
