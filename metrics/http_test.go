package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
)

func TestHTTPEndpoints(t *testing.T) {
	m := New()
	m.Queries().ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Transport: dnsserver.UDP, Org: "acme"})
	ready, reason := false, "registry not loaded yet"
	s := NewHTTPServer(m.Registry(), func() (bool, string) { return ready, reason }, nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + s.Addr().String()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body != "registry not loaded yet\n" {
		t.Errorf("/readyz before load: %d %q", code, body)
	}
	ready, reason = true, "ok"
	if code, body := get("/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz after load: %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `meshdns_dns_requests_total{rcode="NOERROR",transport="udp",type="AAAA"} 1`) {
		t.Errorf("/metrics: %d, missing the request counter in:\n%s", code, body)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "meshdns_build_info"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestHTTPStartFailsOnABusyAddress(t *testing.T) {
	a := NewHTTPServer(New().Registry(), func() (bool, string) { return true, "ok" }, nil)
	if err := a.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	b := NewHTTPServer(New().Registry(), func() (bool, string) { return true, "ok" }, nil)
	if err := b.Start(a.Addr().String()); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Errorf("second Start on %s: %v, want an error naming --http", a.Addr(), err)
	}
}

// Profiles are served only when asked for.
func TestHTTPProfilesOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := NewHTTPServer(New().Registry(), func() (bool, string) { return true, "ok" }, nil)
		if on {
			s.ServeProfiles()
		}
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile"} {
			resp, err := http.Get("http://" + s.Addr().String() + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := resp.StatusCode == 200 && strings.Contains(string(body), want)
			if got != on {
				t.Errorf("profiles on=%v: %s gave %d %.80q", on, path, resp.StatusCode, body)
			}
		}
		_ = s.Shutdown(context.Background())
	}
}
