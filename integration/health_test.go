package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
)

// The health fixture (SPEC §5). The asker is dig on loopback: --default-org
// acme, region ams (the server's). web offers http/tcp on four started
// machines in three distance classes; one of them is critical.
const (
	hAms1 = "fdaa:0:18:a7b:1::2" // aa01: http passing
	hAms2 = "fdaa:0:18:a7b:1::3" // aa02: http critical
	hFra  = "fdaa:0:18:a7b:2::2" // ff01: http warning, port 8081
	hIad  = "fdaa:0:18:a7b:3::2" // 1ad1: no checks, also dns/udp
	hDb1  = "fdaa:0:18:a7c:1::2" // db01 ams: pg critical
	hDb2  = "fdaa:0:18:a7c:2::2" // db02 fra: pg critical
)

func httpSvc(port int) []service { return []service{{Name: "http", Protocol: "tcp", Port: port}} }

var healthDoc = registryDoc{
	Orgs: []org{{Name: "acme", Network: "fdaa:0:18::/48"}, {Name: "other", Network: "fdaa:0:19::/48"}},
	Machines: []machine{
		{Org: "acme", App: "web", ID: "aa01", Region: "ams", IP: hAms1, State: "started", Checks: map[string]string{"http": "passing"}, Services: httpSvc(8080)},
		{Org: "acme", App: "web", ID: "aa02", Region: "ams", IP: hAms2, State: "started", Checks: map[string]string{"http": "critical", "disk": "passing"}, Services: httpSvc(8080)},
		{Org: "acme", App: "web", ID: "ff01", Region: "fra", IP: hFra, State: "started", Checks: map[string]string{"http": "warning"}, Services: httpSvc(8081)},
		{Org: "acme", App: "web", ID: "1ad1", Region: "iad", IP: hIad, State: "started", Services: []service{{Name: "http", Protocol: "tcp", Port: 8080}, {Name: "dns", Protocol: "udp", Port: 53}}},
		{Org: "acme", App: "web", ID: "5d01", Region: "syd", IP: "fdaa:0:18:a7b:4::2", State: "stopped", Services: []service{{Name: "grpc", Protocol: "tcp", Port: 9000}}},
		{Org: "acme", App: "db", ID: "db01", Region: "ams", IP: hDb1, State: "started", Checks: map[string]string{"pg": "critical"}, Services: []service{{Name: "pg", Protocol: "tcp", Port: 5432}}},
		{Org: "acme", App: "db", ID: "db02", Region: "fra", IP: hDb2, State: "started", Checks: map[string]string{"pg": "critical"}, Services: []service{{Name: "pg", Protocol: "tcp", Port: 5432}}},
		{Org: "other", App: "web", ID: "0b01", Region: "ams", IP: "fdaa:0:19:a7b:1::2", State: "started", Services: []service{{Name: "ssh", Protocol: "tcp", Port: 22}}},
	},
}

// srvWant is one expected SRV record; records of one priority may come in
// any order (equal distances are ordered by a per-asker hash).
type srvWant struct {
	prio   uint16
	port   uint16
	target string
	ip     string
}

// srv expects exactly these records, by priority, each target's AAAA in
// the additional section in the same order.
func srv(recs ...srvWant) want {
	return want{rcode: "NOERROR", check: func(t *testing.T, res *digtest.Result) {
		t.Helper()
		if len(res.Answer) != len(recs) {
			t.Fatalf("%d answers, want %d\n%s", len(res.Answer), len(recs), res.Raw)
		}
		var got []srvWant
		for i, rr := range res.Answer {
			s, ok := rr.(*dns.SRV)
			if !ok {
				t.Fatalf("answer %v is not SRV", rr)
			}
			if s.Weight != 1 {
				t.Errorf("weight %d, want 1: %v", s.Weight, s)
			}
			if i > 0 && s.Priority < got[i-1].prio {
				t.Errorf("priorities not ascending (nearest first): %v", res.Answer)
			}
			g := srvWant{prio: s.Priority, port: s.Port, target: s.Target}
			if i < len(res.Additional) {
				a, ok := res.Additional[i].(*dns.AAAA)
				if !ok || a.Hdr.Name != s.Target || a.Hdr.Ttl != ttl {
					t.Errorf("additional %d is %v, want the AAAA of %s", i, res.Additional[i], s.Target)
				} else {
					g.ip = a.AAAA.String()
				}
			}
			got = append(got, g)
		}
		if len(res.Additional) != len(recs) {
			t.Errorf("%d additional records, want %d", len(res.Additional), len(recs))
		}
		key := func(x srvWant) string { return fmt.Sprintf("%d %d %s %s", x.prio, x.port, x.target, x.ip) }
		gk, wk := make([]string, len(got)), make([]string, len(recs))
		for i := range got {
			gk[i], wk[i] = key(got[i]), key(recs[i])
		}
		slices.Sort(gk)
		slices.Sort(wk)
		if !slices.Equal(gk, wk) {
			t.Errorf("SRV records\n got %v\nwant %v", gk, wk)
		}
	}}
}

func healthCases() []struct {
	name, qtype string
	want        want
} {
	return []struct {
		name, qtype string
		want        want
	}{
		// Healthy machines only: not the critical aa02.
		{"web.internal", "AAAA", noerror(one(hAms1), one(hFra), one(hIad))},
		{"global.web.internal", "AAAA", noerror(one(hAms1), one(hFra), one(hIad))},
		{"ams.web.internal", "AAAA", noerror(one(hAms1))},
		{"top2.nearest.of.web.internal", "AAAA", noerror(one(hAms1), one(hFra))},
		{"aa02.vm.web.internal", "AAAA", noerror(one(hAms2))}, // the machine itself, whatever its checks
		// All critical: fail open.
		{"db.internal", "AAAA", noerror(one(hDb1), one(hDb2))},
		{"fra.db.internal", "AAAA", noerror(one(hDb2))},
		// TXT lists keep their meaning; checks.<app>.
		{"vms.web.internal", "TXT", txt("1ad1 iad,aa01 ams,aa02 ams,ff01 fra")},
		{"checks.web.internal", "TXT", txt("1ad1 none,aa01 passing,aa02 critical,ff01 warning")},
		{"checks.db.internal", "TXT", txt("db01 critical,db02 critical")},
		{"checks.nope.internal", "TXT", nxdomain},
		// SRV: three distance classes from ams.
		{"_http._tcp.web.internal", "SRV", srv(
			srvWant{0, 8080, "aa01.vm.web.internal.", hAms1},
			srvWant{1, 8081, "ff01.vm.web.internal.", hFra},
			srvWant{2, 8080, "1ad1.vm.web.internal.", hIad})},
		{"_dns._udp.web.internal", "SRV", srv(srvWant{0, 53, "1ad1.vm.web.internal.", hIad})},
		{"_pg._tcp.db.internal", "SRV", srv( // fail open
			srvWant{0, 5432, "db01.vm.db.internal.", hDb1},
			srvWant{1, 5432, "db02.vm.db.internal.", hDb2})},
		{"_grpc._tcp.web.internal", "SRV", nodata}, // declared by a stopped machine only
		{"_http._tcp.web.internal", "AAAA", nodata},
		{"_tcp.web.internal", "SRV", nodata}, // empty non-terminal
		{"_udp.web.internal", "AAAA", nodata},
		{"_http._udp.web.internal", "SRV", nxdomain},
		{"_ssh._tcp.web.internal", "SRV", nxdomain}, // other org's
		{"_http._tcp.nope.internal", "SRV", nxdomain},
	}
}

func startHealth(t *testing.T, extra ...string) *harness.Meshdns {
	t.Helper()
	m := harness.StartMeshdns(t, harness.Args(append([]string{"--default-org", "acme", "--region", "ams"}, extra...)...))
	load(t, m, healthDoc)
	harness.Poll(t, 5*time.Second, 5*time.Millisecond, "healthDoc served", func() (bool, string) {
		r := m.Query(t, "checks.db.internal", dns.TypeTXT, harness.QueryOptions{TCP: true})
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return false, r.String()
		}
		got := strings.Join(r.Answer[0].(*dns.TXT).Txt, "")
		return got == "db01 critical,db02 critical", got
	})
	return m
}

// TestHealthNames asks every health-aware name and SRV of SPEC §5 with the
// real dig over UDP and TCP, then changes checks with meshctl and watches
// the very next answers follow, and reads the fail-open counter.
func TestHealthNames(t *testing.T) {
	t.Parallel()
	m := startHealth(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			for _, c := range healthCases() {
				args := []string{strings.ToLower(c.qtype), c.name}
				if transport == "tcp" {
					args = append([]string{"+tcp"}, args...)
				}
				res := m.Dig(t, args...)
				t.Run(c.name+"_"+c.qtype, func(t *testing.T) { checkResponse(t, res, c.name, c.want) })
			}
		})
	}

	t.Run("fail-open answers are counted", func(t *testing.T) {
		before := metricValue(t, m, "meshdns_dns_fail_open_answers_total")
		for range 3 {
			m.Dig(t, "aaaa", "db.internal")
			m.Dig(t, "aaaa", "web.internal") // not fail open
		}
		if got := metricValue(t, m, "meshdns_dns_fail_open_answers_total"); got != before+3 {
			t.Errorf("fail-open counter went from %v to %v, want +3", before, got)
		}
	})

	ep := m.EtcdEndpoint()
	const deadline = 2 * time.Second
	t.Run("a critical machine recovers", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "check", "aa02", "http", "passing", "--org", "acme", "--app", "web")
		s := digUntil(t, m, deadline, "aa02 back in web.internal", func(r *digtest.Result) bool {
			return slices.Contains(aaaaOf(r.Answer), hAms2)
		}, "aaaa", "web.internal")
		t.Logf("check passing → in web.internal: %v", s)
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror([]string{hAms1, hAms2}, one(hFra), one(hIad)))
		checkResponse(t, m.Dig(t, "srv", "_http._tcp.web.internal"), "_http._tcp.web.internal", srv(
			srvWant{0, 8080, "aa01.vm.web.internal.", hAms1},
			srvWant{0, 8080, "aa02.vm.web.internal.", hAms2},
			srvWant{1, 8081, "ff01.vm.web.internal.", hFra},
			srvWant{2, 8080, "1ad1.vm.web.internal.", hIad}))
		checkResponse(t, m.Dig(t, "txt", "checks.web.internal"), "checks.web.internal", txt("1ad1 none,aa01 passing,aa02 passing,ff01 warning"))
	})
	t.Run("a machine goes critical", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "check", "aa01", "pg", "critical", "--org", "acme", "--app", "web")
		s := digUntil(t, m, deadline, "aa01 gone from _http._tcp.web.internal", func(r *digtest.Result) bool {
			return r.Status == "NOERROR" && len(r.Answer) == 3
		}, "srv", "_http._tcp.web.internal")
		t.Logf("check critical → gone from SRV: %v", s)
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(one(hAms2), one(hFra), one(hIad)))
		checkResponse(t, m.Dig(t, "aaaa", "aa01.vm.web.internal"), "aa01.vm.web.internal", noerror(one(hAms1)))
		checkResponse(t, m.Dig(t, "txt", "checks.web.internal"), "checks.web.internal", txt("1ad1 none,aa01 critical,aa02 passing,ff01 warning"))
	})
}

// TestHealthAwareOff: --health-aware=false answers every started machine;
// set from the config file, it turns on and off with SIGHUP.
func TestHealthAwareOff(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "meshdns.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("health-aware: false\n")
	m := startHealth(t, "--config", cfg)
	all := noerror([]string{hAms1, hAms2}, one(hFra), one(hIad))
	checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", all)
	checkResponse(t, m.Dig(t, "srv", "_http._tcp.web.internal"), "_http._tcp.web.internal", srv(
		srvWant{0, 8080, "aa01.vm.web.internal.", hAms1},
		srvWant{0, 8080, "aa02.vm.web.internal.", hAms2},
		srvWant{1, 8081, "ff01.vm.web.internal.", hFra},
		srvWant{2, 8080, "1ad1.vm.web.internal.", hIad}))
	before := metricValue(t, m, "meshdns_dns_fail_open_answers_total")
	checkResponse(t, m.Dig(t, "aaaa", "db.internal"), "db.internal", noerror(one(hDb1), one(hDb2)))
	if got := metricValue(t, m, "meshdns_dns_fail_open_answers_total"); got != before {
		t.Errorf("fail open counted with --health-aware=false: %v → %v", before, got)
	}

	write("health-aware: true\n")
	m.Signal(syscall.SIGHUP)
	digUntil(t, m, 10*time.Second, "health-aware again after SIGHUP", func(r *digtest.Result) bool {
		return r.Status == "NOERROR" && !slices.Contains(aaaaOf(r.Answer), hAms2)
	}, "aaaa", "web.internal")
	checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(one(hAms1), one(hFra), one(hIad)))
}

// TestSRVTruncationDig: an SRV answer too big for dig's UDP buffer comes
// with TC and dig's retry over TCP gets every record and every target's
// AAAA; one whose records fit but whose additional AAAA do not keeps all
// records without TC.
func TestSRVTruncationDig(t *testing.T) {
	t.Parallel()
	m := harness.StartMeshdns(t, harness.Args("--default-org", "acme", "--region", "ams"))
	doc := registryDoc{Orgs: []org{{Name: "acme", Network: "fdaa:0:18::/48"}}}
	regions := []string{"ams", "fra", "iad", "syd"}
	for i := range 60 {
		doc.Machines = append(doc.Machines, machine{Org: "acme", App: "big", ID: fmt.Sprintf("b%03x", i), Region: regions[i%4],
			IP: fmt.Sprintf("fdaa:0:18:b::%x", i+1), State: "started", Services: httpSvc(80)})
	}
	for i := range 10 {
		doc.Machines = append(doc.Machines, machine{Org: "acme", App: "small", ID: fmt.Sprintf("c%03x", i), Region: "ams",
			IP: fmt.Sprintf("fdaa:0:18:c::%x", i+1), State: "started", Services: httpSvc(80)})
	}
	load(t, m, doc)
	harness.Poll(t, 5*time.Second, 5*time.Millisecond, "doc served", func() (bool, string) {
		r := m.Query(t, "vms.small.internal", dns.TypeTXT, harness.QueryOptions{TCP: true})
		return len(r.Answer) == 1 && strings.Count(strings.Join(r.Answer[0].(*dns.TXT).Txt, ""), ",") == 9, r.String()
	})

	res := m.Dig(t, "+ignore", "+bufsize=1232", "srv", "_http._tcp.big.internal")
	if !res.HasFlag("tc") || len(res.Answer) == 0 || len(res.Answer) >= 60 || res.MsgSize > 1232 {
		t.Errorf("UDP, 1232 bytes: TC %v, %d answers, %d bytes; want TC and the nearest that fit\n%s", res.HasFlag("tc"), len(res.Answer), res.MsgSize, res.Raw)
	}
	// The nearest are kept: all 15 ams machines (priority 0) first, in
	// ascending priority.
	for i, rr := range res.Answer {
		p := rr.(*dns.SRV).Priority
		if i < 15 && p != 0 || i > 0 && p < res.Answer[i-1].(*dns.SRV).Priority {
			t.Errorf("answer %d of a cut answer has priority %d: the nearest (ams, 0) must be kept first, in ascending priority", i, p)
			break
		}
	}
	res = m.Dig(t, "+bufsize=1232", "srv", "_http._tcp.big.internal") // dig retries over TCP
	if res.Protocol != "TCP" || res.HasFlag("tc") || len(res.Answer) != 60 || len(res.Additional) != 60 {
		t.Errorf("after the TCP retry: over %s, TC %v, %d answers, %d additional; want all 60 over TCP\n%s", res.Protocol, res.HasFlag("tc"), len(res.Answer), len(res.Additional), res.Raw)
	}
	prio := map[uint16]int{}
	for _, rr := range res.Answer {
		prio[rr.(*dns.SRV).Priority]++
	}
	if prio[0] != 15 || prio[1] != 15 || prio[2] != 15 || prio[3] != 15 {
		t.Errorf("priorities %v, want 15 machines in each of the classes 0 (ams), 1 (fra), 2 (iad), 3 (syd)", prio)
	}

	// Without a cookie: its option would take the room of the one AAAA.
	res = m.Dig(t, "+ignore", "+nocookie", "+bufsize=512", "srv", "_http._tcp.small.internal")
	if res.HasFlag("tc") || len(res.Answer) != 10 || len(res.Additional) == 0 || len(res.Additional) >= 10 || res.MsgSize > 512 {
		t.Errorf("UDP, 512 bytes: TC %v, %d answers, %d additional, %d bytes; want all 10 answers, some AAAA, no TC\n%s",
			res.HasFlag("tc"), len(res.Answer), len(res.Additional), res.MsgSize, res.Raw)
	}
}

// TestGoResolverLookupSRV: Go's own resolver (net.Resolver, PreferGo)
// asking a running meshdns gets the service's targets and ports, nearest
// distance class first, and resolves a target.
func TestGoResolverLookupSRV(t *testing.T) {
	t.Parallel()
	m := startHealth(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, m.Addr())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cname, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.internal.")
	if err != nil {
		t.Fatalf("LookupSRV: %v", err)
	}
	if cname != "_http._tcp.web.internal." {
		t.Errorf("cname %q", cname)
	}
	var got []string
	for _, s := range srvs {
		got = append(got, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
	}
	want := []string{"0 1 8080 aa01.vm.web.internal.", "1 1 8081 ff01.vm.web.internal.", "2 1 8080 1ad1.vm.web.internal."}
	if !slices.Equal(got, want) {
		t.Errorf("LookupSRV answers %v, want %v (priority order, critical aa02 left out)", got, want)
	}
	ips, err := r.LookupIP(ctx, "ip6", srvs[0].Target)
	if err != nil || len(ips) != 1 || ips[0].String() != hAms1 {
		t.Errorf("LookupIP %s: %v %v, want %s", srvs[0].Target, ips, err, hAms1)
	}
	if _, _, err := r.LookupSRV(ctx, "nope", "tcp", "web.internal."); err == nil {
		t.Error("LookupSRV of a service nobody offers: no error")
	} else if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
		t.Errorf("LookupSRV of a service nobody offers: %v, want a not-found DNSError", err)
	}
}

// metricValue reads one unlabelled series from m's /metrics.
func metricValue(t *testing.T, m *harness.Meshdns, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + m.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", name)
	return 0
}
