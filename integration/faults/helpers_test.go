package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/registry"
)

// prefix is meshdns's default registry prefix (SPEC §3).
const prefix = registry.DefaultPrefix

// Every test registers one org, acme, and runs meshdns with it as the
// default org so that loopback askers are its members.
const orgName = "acme"

var acmeNet = netip.MustParsePrefix("fdaa:0:18::/48")

// baseArgs are the meshdns flags every test uses.
var baseArgs = []string{"--default-org", orgName, "--region", "ams"}

// args is baseArgs followed by extra, as a harness option.
func args(extra ...string) harness.Option {
	return harness.Args(append(slices.Clone(baseArgs), extra...)...)
}

// ---- etcd ----

// newClient is a client for endpoints that reconnects quickly (members in
// these tests come and go) and stays quiet; t.Cleanup closes it.
func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctx10s() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// putRaw writes key (below the prefix) exactly as given, bypassing every
// check a writer makes.
func putRaw(t testing.TB, cli *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := cli.Put(ctx, prefix+key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// currentRevision is etcd's revision now (a linearizable read).
func currentRevision(t testing.TB, cli *clientv3.Client) (rev int64, clusterID uint64) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	resp, err := cli.Get(ctx, "faults-revision-probe")
	if err != nil {
		t.Fatalf("read etcd's revision: %v", err)
	}
	return resp.Header.Revision, resp.Header.ClusterId
}

// compact compacts etcd's history up to its current revision, so that a
// watch from any earlier revision gets ErrCompacted, and returns that
// revision.
func compact(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	rev, _ := currentRevision(t, cli)
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact at %d: %v", rev, err)
	}
	return rev
}

// retry calls f (each call bounded by 2 s) until it succeeds or 30 s have
// passed, and returns how many calls it took. Writes issued while etcd
// elects a leader fail fast; a client retries them.
func retry(f func(ctx context.Context) error) (attempts int, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = f(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return attempts, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// machineItem is a started machine of acme, ready for Writer.PutAll.
func machineItem(app, id, region string, ip netip.Addr) *registry.Machine {
	return &registry.Machine{Org: orgName, App: app, ID: id, Region: region, IP: ip, State: registry.StateStarted}
}

// seed writes acme, its apps and the given machines with Writer.PutAll.
func seed(t testing.TB, cli *clientv3.Client, apps []string, machines []*registry.Machine) {
	t.Helper()
	items := []registry.Item{&registry.OrgValue{Name: orgName, Network: acmeNet}}
	for _, a := range apps {
		items = append(items, &registry.AppValue{Org: orgName, Name: a})
	}
	for _, m := range machines {
		items = append(items, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	n, err := registry.NewWriter(cli, prefix).PutAll(ctx, items)
	if err != nil {
		t.Fatalf("PutAll: %d of %d written: %v", n, len(items), err)
	}
	if len(items) > 1000 {
		t.Logf("PutAll wrote %d keys in %v", n, time.Since(start).Round(time.Millisecond))
	}
}

// ip is an address of acme: fdaa:0:18:<a>::<b>.
func ip(a, b int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fdaa:0:18:%x::%x", a, b))
}

// regions are the region codes machines are spread over.
var regions = []string{"ams", "fra", "iad", "syd", "nrt", "lhr", "ord", "sin"}

// ---- what etcd holds, as DNS should show it ----

// mach is a machine as etcd holds it, decoded by the test independently of
// the server's code.
type mach struct {
	Region string `json:"region"`
	IP     string `json:"ip"`
	State  string `json:"state"`
	Skip   bool   `json:"skip_registration"`
}

func (m mach) started() bool  { return m.State == "started" && !m.Skip }
func (m mach) deployed() bool { return m.State != "destroyed" && !m.Skip }

// model is acme's apps and machines as etcd holds them: app → id → machine.
// Apps with an apps/ key but no machines are present with an empty map.
type model map[string]map[string]mach

var (
	states   = []string{"created", "starting", "started", "stopping", "stopped", "suspending", "suspended", "replacing", "destroying", "destroyed", "failed"}
	labelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hexIDRE  = regexp.MustCompile(`^[0-9a-f]{1,63}$`)
	regionRE = regexp.MustCompile(`^[a-z]{3}$`)
)

// readModel reads acme's apps and machines from etcd, leaving out what SPEC
// §3 says a server must skip (values that do not decode or break a rule).
func readModel(t testing.TB, cli *clientv3.Client) model {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	mo := model{}
	apps, err := cli.Get(ctx, prefix+"apps/"+orgName+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read apps: %v", err)
	}
	for _, kv := range apps.Kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix+"apps/"+orgName+"/")
		var v map[string]any
		if labelRE.MatchString(name) && json.Unmarshal(kv.Value, &v) == nil && v != nil {
			if mo[name] == nil {
				mo[name] = map[string]mach{}
			}
		}
	}
	resp, err := cli.Get(ctx, prefix+"machines/"+orgName+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read machines: %v", err)
	}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), prefix+"machines/"+orgName+"/"), "/")
		if len(parts) != 2 || !labelRE.MatchString(parts[0]) || !hexIDRE.MatchString(parts[1]) {
			continue
		}
		var m mach
		if !strings.HasPrefix(strings.TrimSpace(string(kv.Value)), "{") || json.Unmarshal(kv.Value, &m) != nil {
			continue
		}
		a, err := netip.ParseAddr(m.IP)
		if err != nil || !acmeNet.Contains(a) || !slices.Contains(states, m.State) || !regionRE.MatchString(m.Region) {
			continue
		}
		m.IP = a.String()
		if !m.deployed() {
			continue // destroyed and skipped machines count as absent
		}
		if mo[parts[0]] == nil {
			mo[parts[0]] = map[string]mach{}
		}
		mo[parts[0]][parts[1]] = m
	}
	return mo
}

// vms is the text of vms.<app>.internal (all: all.vms.<app>.internal).
func (mo model) vms(app string, all bool) string {
	var parts []string
	for id, m := range mo[app] {
		if m.started() || all {
			parts = append(parts, id+" "+m.Region)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// appNames is the app names, sorted.
func (mo model) appNames() []string {
	var names []string
	for a := range mo {
		names = append(names, a)
	}
	sort.Strings(names)
	return names
}

// appID names one machine.
type appID struct{ app, id string }

func (a appID) vmName() string { return a.id + ".vm." + a.app + ".internal" }

// ---- DNS ----

// ask sends one query (TCP for tcp) and returns the reply.
func ask(addr, name string, qtype uint16, tcp bool, timeout time.Duration) (*dns.Msg, error) {
	opts := harness.QueryOptions{TCP: tcp, Timeout: timeout}
	r, _, err := harness.Exchange(addr, harness.NewQuery(name, qtype, opts), opts)
	return r, err
}

// expectation judges one reply; nil means right.
type expectation func(*dns.Msg) error

// wantAAAA wants NOERROR, AA and exactly these addresses, in any order.
func wantAAAA(ips ...string) expectation {
	want := slices.Clone(ips)
	for i, s := range want {
		want[i] = netip.MustParseAddr(s).String()
	}
	sort.Strings(want)
	return func(r *dns.Msg) error {
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			return fmt.Errorf("%s aa=%v, want NOERROR with AA", harness.Rcode(r), r.Authoritative)
		}
		var got []string
		for _, rr := range r.Answer {
			a, ok := rr.(*dns.AAAA)
			if !ok {
				return fmt.Errorf("answer %v is not AAAA", rr)
			}
			got = append(got, a.AAAA.String())
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("AAAA %v, want %v", got, want)
		}
		return nil
	}
}

// wantRcode wants that rcode and no answer.
func wantRcode(rcode int) expectation {
	return func(r *dns.Msg) error {
		if r.Rcode != rcode || len(r.Answer) != 0 {
			return fmt.Errorf("%s with %d answers, want %s with none", harness.Rcode(r), len(r.Answer), dns.RcodeToString[rcode])
		}
		return nil
	}
}

// wantTXT wants NOERROR and one TXT record whose strings concatenate to text.
func wantTXT(text string) expectation {
	return func(r *dns.Msg) error {
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("%s with %d answers, want NOERROR with one TXT", harness.Rcode(r), len(r.Answer))
		}
		tx, ok := r.Answer[0].(*dns.TXT)
		if !ok {
			return fmt.Errorf("answer %v is not TXT", r.Answer[0])
		}
		if got := strings.Join(tx.Txt, ""); got != text {
			return fmt.Errorf("TXT %.200q, want %.200q", got, text)
		}
		return nil
	}
}

// probe is one question and the answer it must get.
type probe struct {
	name  string
	qtype uint16
	tcp   bool
	want  expectation
}

func (p probe) String() string { return p.name + " " + dns.TypeToString[p.qtype] }

// run asks p at addr and returns what is wrong, or "".
func (p probe) run(addr string, timeout time.Duration) string {
	r, err := ask(addr, p.name, p.qtype, p.tcp, timeout)
	if err != nil {
		return fmt.Sprintf("%s: %v", p, err)
	}
	if err := p.want(r); err != nil {
		return fmt.Sprintf("%s: %v", p, err)
	}
	return ""
}

// vmProbe is the AAAA question for one machine, as mo says it must be
// answered: its address if started, NODATA if deployed but not started,
// NXDOMAIN if absent.
func (mo model) vmProbe(a appID) probe {
	p := probe{name: a.vmName(), qtype: dns.TypeAAAA}
	m, ok := mo[a.app][a.id]
	switch {
	case !ok:
		p.want = wantRcode(dns.RcodeNameError)
	case m.started():
		p.want = wantAAAA(m.IP)
	default:
		p.want = wantRcode(dns.RcodeSuccess)
	}
	return p
}

// listProbes are vms.<app> and all.vms.<app> for each app (over TCP: the
// lists outgrow UDP), NXDOMAIN for apps mo does not hold.
func (mo model) listProbes(apps []string) []probe {
	var ps []probe
	for _, a := range apps {
		for _, all := range []bool{false, true} {
			name := "vms." + a + ".internal"
			if all {
				name = "all." + name
			}
			p := probe{name: name, qtype: dns.TypeTXT, tcp: true, want: wantRcode(dns.RcodeNameError)}
			if _, ok := mo[a]; ok {
				p.want = wantTXT(mo.vms(a, all))
			}
			ps = append(ps, p)
		}
	}
	return ps
}

// mismatches asks every probe at addr and returns what is wrong.
func mismatches(addr string, ps []probe) []string {
	var wrong []string
	for _, p := range ps {
		if w := p.run(addr, 2*time.Second); w != "" {
			wrong = append(wrong, w)
		}
	}
	return wrong
}

// waitMatch polls until every probe is answered right at every address,
// and returns how long that took.
func waitMatch(t testing.TB, what string, timeout time.Duration, ps []probe, addrs ...string) time.Duration {
	t.Helper()
	return harness.Poll(t, timeout, 20*time.Millisecond, what, func() (bool, string) {
		for _, addr := range addrs {
			if wrong := mismatches(addr, ps); len(wrong) > 0 {
				return false, fmt.Sprintf("at %s, %d of %d answers differ, e.g.:\n  %s", addr, len(wrong), len(ps),
					strings.Join(wrong[:min(len(wrong), 10)], "\n  "))
			}
		}
		return true, ""
	})
}

// ---- continuous queries ----

// querier asks a server a fixed set of questions in turn, one every
// interval, each waiting for its reply, and counts every reply that is not
// exactly right (a timeout included) as a failure.
type querier struct {
	addr     string
	probes   []probe
	interval time.Duration
	timeout  time.Duration
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	mu    sync.Mutex
	stats queryStats
}

// queryStats is what a querier saw.
type queryStats struct {
	Sent, Failed int
	Failures     []string // the first few, with when they happened
	Latencies    []time.Duration
}

func (s queryStats) String() string {
	l := slices.Clone(s.Latencies)
	slices.Sort(l)
	pct := func(p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))].Round(time.Microsecond)
	}
	return fmt.Sprintf("%d queries, %d failed; latency p50 %v p99 %v max %v", s.Sent, s.Failed, pct(0.5), pct(0.99), pct(1))
}

func startQuerier(t testing.TB, addr string, interval, timeout time.Duration, probes ...probe) *querier {
	q := &querier{addr: addr, probes: probes, interval: interval, timeout: timeout, stop: make(chan struct{}), done: make(chan struct{})}
	go q.loop()
	t.Cleanup(func() { q.Stop() })
	return q
}

func (q *querier) loop() {
	defer close(q.done)
	tick := time.NewTicker(q.interval)
	defer tick.Stop()
	begin := time.Now()
	for i := 0; ; i++ {
		select {
		case <-q.stop:
			return
		case <-tick.C:
		}
		p := q.probes[i%len(q.probes)]
		start := time.Now()
		wrong := p.run(q.addr, q.timeout)
		took := time.Since(start)
		q.mu.Lock()
		q.stats.Sent++
		q.stats.Latencies = append(q.stats.Latencies, took)
		if wrong != "" {
			q.stats.Failed++
			if len(q.stats.Failures) < 20 {
				q.stats.Failures = append(q.stats.Failures, fmt.Sprintf("at +%v: %s", start.Sub(begin).Round(time.Millisecond), wrong))
			}
		}
		q.mu.Unlock()
	}
}

// Snapshot returns the counts so far.
func (q *querier) Snapshot() queryStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Failures = slices.Clone(s.Failures)
	s.Latencies = slices.Clone(s.Latencies)
	return s
}

// Stop ends the queries and returns what they saw.
func (q *querier) Stop() queryStats {
	q.once.Do(func() { close(q.stop) })
	<-q.done
	return q.Snapshot()
}

// requireNoFailures fails the test if any query of s failed.
func requireNoFailures(t testing.TB, what string, s queryStats) {
	t.Helper()
	t.Logf("%s: %v", what, s)
	if s.Sent == 0 {
		t.Errorf("%s: no queries were sent", what)
	}
	if s.Failed > 0 {
		t.Errorf("%s: %d of %d queries failed:\n  %s", what, s.Failed, s.Sent, strings.Join(s.Failures, "\n  "))
	}
}

// ---- /metrics and /readyz ----

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(addr, path string) (int, string, error) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// metrics scrapes /metrics and sums every sample by metric name (labels
// dropped).
func metrics(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	code, body, err := httpGet(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics at %s: %d %v", addr, code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		out[name] += v
	}
	return out
}

// metric is one metric's value (summed over its labels).
func metric(t testing.TB, addr, name string) float64 {
	t.Helper()
	v, ok := metrics(t, addr)[name]
	if !ok {
		t.Fatalf("/metrics at %s has no %s", addr, name)
	}
	return v
}

// waitReadyz polls /readyz until it answers want, and returns its body.
func waitReadyz(t testing.TB, addr string, want int, timeout time.Duration) (body string, took time.Duration) {
	t.Helper()
	took = harness.Poll(t, timeout, 50*time.Millisecond, fmt.Sprintf("/readyz %d", want), func() (bool, string) {
		code, b, err := httpGet(addr, "/readyz")
		if err != nil {
			return false, err.Error()
		}
		body = strings.TrimSpace(b)
		return code == want, fmt.Sprintf("%d %q", code, body)
	})
	return body, took
}

// ---- process memory ----

// procKiB reads a field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
func procKiB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	v, err := readProcKiB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readProcKiB is procKiB for goroutines other than the test's.
func readProcKiB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux's
// clear_refs "5"), so that a later VmHWM is the peak of what follows.
func resetPeakRSS(t testing.TB, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS of %d: %v", pid, err)
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// logsWith returns the log entries of m whose message contains s.
func logsWith(m *harness.Meshdns, s string) []harness.LogEntry {
	var out []harness.LogEntry
	for _, e := range m.Logs() {
		if strings.Contains(e.Msg(), s) {
			out = append(out, e)
		}
	}
	return out
}
