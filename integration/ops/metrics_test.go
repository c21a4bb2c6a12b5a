package ops

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
)

// Real queries move the counters, and a registry write through meshctl is
// measured by the propagation histogram.
func TestMetricsFollowQueriesAndWrites(t *testing.T) {
	t.Parallel()
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--http", h))
	readyz(t, h, http.StatusOK, 10*time.Second)

	before := scrape(t, h)
	for range 3 {
		r := m.Dig(t, "aaaa", "web.internal")
		if r.Status != "NOERROR" || len(r.Answer) != 4 {
			t.Fatalf("dig aaaa web.internal: %s with %d answers", r.Status, len(r.Answer))
		}
	}
	if r := m.Query(t, "vms.web.internal", dns.TypeTXT, harness.QueryOptions{TCP: true}); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("TXT over TCP: %s", harness.Rcode(r))
	}
	m.Dig(t, "aaaa", "nope.internal")
	after := scrape(t, h)

	grew := func(want float64, name string, labels ...string) {
		t.Helper()
		if d := value(after, name, labels...) - value(before, name, labels...); d != want {
			t.Errorf("%s%v grew by %v, want %v", name, labels, d, want)
		}
	}
	grew(3, "meshdns_dns_requests_total", "type=AAAA", "rcode=NOERROR", "transport=udp")
	grew(1, "meshdns_dns_requests_total", "type=TXT", "rcode=NOERROR", "transport=tcp")
	grew(1, "meshdns_dns_requests_total", "type=AAAA", "rcode=NXDOMAIN", "transport=udp")
	grew(5, "meshdns_dns_request_duration_seconds_count")
	// Each query went to the answer cache, hit or miss.
	if d := value(after, "meshdns_cache_hits_total") + value(after, "meshdns_cache_misses_total") -
		value(before, "meshdns_cache_hits_total") - value(before, "meshdns_cache_misses_total"); d != 5 {
		t.Errorf("cache hits + misses grew by %v, want 5", d)
	}

	for kind, want := range map[string]float64{"orgs": 1, "apps": 3, "machines": 9, "peers": 1} {
		if got := value(after, "meshdns_registry_objects", "kind="+kind); got != want {
			t.Errorf("meshdns_registry_objects{kind=%s} = %v, want %v (the demo org)", kind, got, want)
		}
	}
	if value(after, "meshdns_registry_revision") <= 0 || value(after, "meshdns_registry_ready") != 1 ||
		value(after, "meshdns_registry_loads_total") != 1 {
		t.Errorf("registry: revision %v ready %v loads %v", value(after, "meshdns_registry_revision"),
			value(after, "meshdns_registry_ready"), value(after, "meshdns_registry_loads_total"))
	}
	if age := value(after, "meshdns_registry_snapshot_age_seconds"); age < 0 || age > 15 {
		t.Errorf("snapshot age %vs, want a few seconds at most", age)
	}

	// A write through meshctl (which stamps updated_at) is timed from the
	// write to this server serving it.
	const propagation = "meshdns_registry_propagation_seconds_count"
	n := value(after, propagation)
	start := time.Now()
	harness.MustMeshctl(t, m.EtcdEndpoint(), "machine", "state", "3d8d9e0b2ee489", "stopped", "--org", "demo", "--app", "web")
	harness.Poll(t, 10*time.Second, 20*time.Millisecond, "propagation histogram counts the write", func() (bool, string) {
		ss := scrape(t, h)
		got := value(ss, propagation)
		return got == n+1, fmt.Sprintf("count %v, want %v", got, n+1)
	})
	end := scrape(t, h)
	if d := value(end, "meshdns_registry_propagation_seconds_sum") - value(after, "meshdns_registry_propagation_seconds_sum"); d < 0 || d > time.Since(start).Seconds() {
		t.Errorf("measured propagation %vs, want between 0 and the %v the write took to show", d, time.Since(start))
	}
	if r := m.Dig(t, "aaaa", "web.internal"); len(r.Answer) != 3 {
		t.Errorf("after stopping a machine: %d answers, want 3", len(r.Answer))
	}
}

// /readyz says 503 with a reason until meshdns first loads the registry:
// here etcd is not even running when meshdns starts.
func TestReadyOnlyAfterTheFirstLoad(t *testing.T) {
	t.Parallel()
	clientPort, peerPort := harness.FreePort(t, false), harness.FreePort(t, false)
	ep := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--http", h, "--default-org", "acme"),
		harness.Wait(harness.WaitListening))

	if code, body, err := get(h, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz while etcd is down: %d %q %v, want 200", code, body, err)
	}
	body := readyz(t, h, http.StatusServiceUnavailable, 5*time.Second)
	if !strings.HasPrefix(body, "registry not loaded yet") || strings.Count(body, "\n") != 1 {
		t.Errorf("/readyz before the first load: %q, want one line starting \"registry not loaded yet\"", body)
	}
	if r := m.Query(t, "web.internal", dns.TypeAAAA, harness.QueryOptions{}); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("before the first load: %s, want SERVFAIL", harness.Rcode(r))
	}

	e := startEtcd(t, clientPort, peerPort, nil)
	put(t, e, ep, nil, "orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	if body := readyz(t, h, http.StatusOK, 20*time.Second); body != "ok\n" {
		t.Errorf("/readyz after the load: %q, want \"ok\"", body)
	}
	m.WaitLoaded()
}
