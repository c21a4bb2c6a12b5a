package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

const (
	prefix  = registry.DefaultPrefix
	orgName = "acme"
	app     = "pub"
	// debianEtcd is Debian's etcd-server package (3.4.23 on bookworm).
	debianEtcd = "/usr/bin/etcd"
)

var acmeNet = netip.MustParsePrefix("fdaa:0:18::/48")

// TestFleetEtcd37 runs the fleet scenario against etcd 3.7, the release
// whose client meshdns is built with.
func TestFleetEtcd37(t *testing.T) { fleet(t, etcdtest.EtcdBinary(t)) }

// TestFleetEtcd34 runs it against Debian's etcd 3.4, an older cluster and
// an older proxy.
func TestFleetEtcd34(t *testing.T) {
	if _, err := os.Stat(debianEtcd); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true, so this is an error): scripts/test.sh installs Debian's etcd-server", debianEtcd, err)
		}
		t.Skipf("%s: %v; install Debian's etcd-server (scripts/test.sh does)", debianEtcd, err)
	}
	fleet(t, debianEtcd)
}

// fleet: three meshdns on one gRPC proxy in front of a three-member
// cluster of bin, and a fourth on the members directly. A write is served
// by all four within a second;
// compaction while one is frozen, then all four match etcd; the proxy
// restarted (with writes while it is down): all four resume without a
// full load and nothing is lost; the leader killed: nothing is lost.
func fleet(t *testing.T, bin string) {
	t.Logf("etcd %s (%s)", etcdtest.Version(t, bin), bin)
	c := etcdtest.ClusterOf(t, 3, bin)
	cli := newClient(t, c.Endpoints()...)
	w := registry.NewWriter(cli, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := w.PutAll(ctx, []registry.Item{
		&registry.OrgValue{Name: orgName, Network: acmeNet},
		&registry.AppValue{Org: orgName, Name: app},
	}); err != nil {
		t.Fatal(err)
	}
	next := 1
	for range 20 {
		putMachine(t, w, next)
		next++
	}
	p := etcdtest.StartGRPCProxy(t, bin, c.Endpoints())
	var servers []*harness.Meshdns
	for range 3 {
		servers = append(servers, harness.StartMeshdns(t, harness.EtcdEndpoints(p.Endpoint),
			harness.Args("--default-org", orgName, "--region", "ams", "--load-jitter", "1s", "--load-rate", "20000")))
	}
	// A fourth talks to the members directly, as meshdns does without a
	// proxy: everything below must hold for it too.
	servers = append(servers, harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...),
		harness.Args("--default-org", orgName, "--region", "ams", "--load-jitter", "1s", "--load-rate", "20000")))
	waitMatch(t, cli, "all four serve the registry", 30*time.Second, servers)

	// A write is served by all four within a second of etcd confirming it.
	var worst, worstWrite time.Duration
	for range 3 {
		i := next
		next++
		start := time.Now()
		putMachine(t, w, i)
		written := time.Now()
		for _, m := range servers {
			harness.Poll(t, 10*time.Second, 2*time.Millisecond, "the new machine served", func() (bool, string) {
				return answers(m, i)
			})
		}
		worst = max(worst, time.Since(written))
		worstWrite = max(worstWrite, written.Sub(start))
	}
	t.Logf("a write was served by all four within %v of etcd confirming it (worst of 3; the write itself took up to %v)",
		worst.Round(time.Millisecond), worstWrite.Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("a write took %v to be served by all four meshdns, want at most 1s (three behind the proxy, one direct)", worst)
	}

	// Compaction while one meshdns is frozen.
	frozen := servers[2]
	frozen.Pause()
	// Enough single-key revisions to fill the proxy's buffer for the
	// frozen client (1,024 responses, after what gRPC's flow control
	// holds): the proxy then cancels its whole watch stream.
	putRaw(t, cli, next, 1500)
	next += 1500
	for i := 1; i <= 30; i++ {
		if err := w.Delete(ctx, registry.MachineKey(orgName, app, machineID(i))); err != nil {
			t.Fatal(err)
		}
	}
	rev := compact(t, cli)
	time.Sleep(500 * time.Millisecond) // the proxy's 50 ms and more
	frozen.Resume()
	took := waitMatch(t, cli, "all four match etcd after the compaction", 30*time.Second, servers)
	t.Logf("compacted at %d while one meshdns was frozen; all four match etcd %v after SIGCONT; loads %v",
		rev, took.Round(time.Millisecond), loads(t, servers))

	// The proxy restarted, with writes while it is away: every meshdns
	// resumes its watch from its revision, without a full load.
	before := loads(t, servers)
	p.Stop()
	for range 20 {
		putMachine(t, w, next)
		next++
	}
	for i := 31; i <= 40; i++ {
		if err := w.Delete(ctx, registry.MachineKey(orgName, app, machineID(i))); err != nil {
			t.Fatal(err)
		}
	}
	p.Start()
	took = waitMatch(t, cli, "all four match etcd after the proxy restart", 30*time.Second, servers)
	for _, m := range servers {
		waitReadyz(t, m, 30*time.Second)
	}
	after := loads(t, servers)
	t.Logf("proxy restarted: all four match etcd %v after it was back; loads %v → %v", took.Round(time.Millisecond), before, after)
	if !slices.Equal(before, after) {
		t.Errorf("the proxy's restart caused full loads: %v → %v, want none", before, after)
	}

	// Quiet registry, busy etcd: writes outside the prefix only, for longer
	// than meshdns's stall timeout (6 s). No progress notification reaches
	// the watches through the proxy; that must not make any server unready
	// or restart its watch, and the next write must still arrive at once.
	stopOther := writeElsewhere(cli, 100*time.Millisecond)
	defer stopOther()
	restarts := metricValues(t, servers, "meshdns_registry_watch_restarts_total")
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		for i, m := range servers {
			if code, body := readyz(m); code != http.StatusOK {
				t.Fatalf("meshdns %d: /readyz %d %q while etcd's revision moved on outside the prefix", i, code, body)
			}
		}
	}
	start := time.Now()
	putMachine(t, w, next)
	for _, m := range servers {
		harness.Poll(t, 10*time.Second, 2*time.Millisecond, "the write after the quiet spell served", func() (bool, string) {
			return answers(m, next)
		})
	}
	next++
	t.Logf("after 10 s of writes outside the prefix only: a write served by all four in %v; watch restarts %v → %v",
		time.Since(start).Round(time.Millisecond), restarts, metricValues(t, servers, "meshdns_registry_watch_restarts_total"))
	if got := metricValues(t, servers, "meshdns_registry_watch_restarts_total"); !slices.Equal(got, restarts) {
		t.Errorf("watches restarted during the quiet spell: %v → %v", restarts, got)
	}

	// The leader killed, with writes before and after (retried while the
	// cluster elects a new leader).
	before = loads(t, servers)
	leader := c.Leader(t)
	for range 10 {
		putMachine(t, w, next)
		next++
	}
	c.Member(leader).Kill()
	for range 10 {
		putMachine(t, w, next)
		next++
	}
	newLeader := c.Leader(t)
	took = waitMatch(t, cli, "all four match etcd after the leader was killed", 30*time.Second, servers)
	t.Logf("leader m%d killed (m%d leads): all four match etcd %v later; loads %v", leader, newLeader, took.Round(time.Millisecond), loads(t, servers))
	// The killed member back, with a write while it starts.
	c.Member(leader).Start()
	putMachine(t, w, next)
	next++
	took = waitMatch(t, cli, "all four match etcd after the member restarted", 30*time.Second, servers)
	after = loads(t, servers)
	t.Logf("m%d restarted: all four match etcd %v later; loads %v → %v", leader, took.Round(time.Millisecond), before, after)
	if !slices.Equal(before, after) {
		t.Errorf("the leader's kill and restart caused full loads: %v → %v, want none", before, after)
	}
}

func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func machineID(i int) string { return fmt.Sprintf("f%04x", i) }

func machineIP(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fdaa:0:18:1::%x", i)) }

// putMachine publishes machine i of pub, retrying (for 30 s) while the
// cluster elects a leader.
func putMachine(t *testing.T, w *registry.Writer, i int) {
	t.Helper()
	m := registry.Machine{Org: orgName, App: app, ID: machineID(i), Region: "ams", IP: machineIP(i), State: registry.StateStarted}
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = w.PutMachine(ctx, m)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("put machine %s: %v", m.ID, err)
}

// putRaw writes machines first..first+n-1 of pub as raw keys, from eight
// writers at once (each its own revision).
func putRaw(t *testing.T, cli *clientv3.Client, first, n int) {
	t.Helper()
	start := time.Now()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := first + g; i < first+n && err == nil; i += 8 {
				v := fmt.Sprintf(`{"region":"ams","ip":"%s","state":"started"}`, machineIP(i))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err = cli.Put(ctx, prefix+registry.MachineKey(orgName, app, machineID(i)).Path(), v)
				cancel()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d machines written in %v", n, time.Since(start).Round(time.Millisecond))
}

// compact compacts etcd's history up to its current revision.
func compact(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "fleet-revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// answers reports whether m serves machine i's address.
func answers(m *harness.Meshdns, i int) (bool, string) {
	q := harness.NewQuery(machineID(i)+".vm."+app+".internal.", dns.TypeAAAA, harness.QueryOptions{})
	r, _, err := harness.Exchange(m.Addr(), q, harness.QueryOptions{Timeout: time.Second})
	if err != nil {
		return false, err.Error()
	}
	if len(r.Answer) == 1 {
		if a, ok := r.Answer[0].(*dns.AAAA); ok && a.AAAA.Equal(machineIP(i).AsSlice()) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%s with %d answers", harness.Rcode(r), len(r.Answer))
}

// etcdList is what all.vms.pub.internal must say, read from etcd: "id
// region" of every machine, sorted, comma-separated.
func etcdList(t *testing.T, cli *clientv3.Client) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := prefix + "machines/" + orgName + "/" + app + "/"
	resp, err := cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var parts, ids []string
	for _, kv := range resp.Kvs {
		var m struct {
			Region string `json:"region"`
		}
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		id := strings.TrimPrefix(string(kv.Key), dir)
		parts = append(parts, id+" "+m.Region)
		ids = append(ids, id)
	}
	slices.Sort(parts)
	return strings.Join(parts, ","), ids
}

// waitMatch waits until every server's all.vms.pub.internal (over TCP)
// lists exactly the machines etcd holds, and returns how long that took.
func waitMatch(t *testing.T, cli *clientv3.Client, what string, timeout time.Duration, servers []*harness.Meshdns) time.Duration {
	t.Helper()
	want, ids := etcdList(t, cli)
	if len(ids) == 0 {
		t.Fatal("etcd holds no machines")
	}
	return harness.Poll(t, timeout, 20*time.Millisecond, what, func() (bool, string) {
		for i, m := range servers {
			opts := harness.QueryOptions{TCP: true, Timeout: time.Second}
			r, _, err := harness.Exchange(m.Addr(), harness.NewQuery("all.vms."+app+".internal.", dns.TypeTXT, opts), opts)
			if err != nil {
				return false, fmt.Sprintf("meshdns %d: %v", i, err)
			}
			var got string
			if len(r.Answer) == 1 {
				if tx, ok := r.Answer[0].(*dns.TXT); ok {
					got = strings.Join(tx.Txt, "")
				}
			}
			if got != want {
				return false, fmt.Sprintf("meshdns %d: %s, %d answers, %d of %d characters as etcd's list of %d machines",
					i, harness.Rcode(r), len(r.Answer), len(got), len(want), len(ids))
			}
		}
		return true, ""
	})
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// writeElsewhere writes a key outside the registry every interval until
// the returned function is called (errors, as during an election, are
// ignored).
func writeElsewhere(cli *clientv3.Client, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-time.After(interval):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = cli.Put(ctx, "/other-service/tick", strconv.Itoa(i))
			cancel()
		}
	}()
	var once bool
	return func() {
		if !once {
			once = true
			close(quit)
			<-done
		}
	}
}

// loads is each server's meshdns_registry_loads_total.
func loads(t *testing.T, servers []*harness.Meshdns) []int {
	t.Helper()
	return metricValues(t, servers, "meshdns_registry_loads_total")
}

// metricValues is each server's value of an unlabelled counter.
func metricValues(t *testing.T, servers []*harness.Meshdns, name string) []int {
	t.Helper()
	var out []int
	for _, m := range servers {
		resp, err := httpClient.Get("http://" + m.HTTPAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		n := -1
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%q: %v", sc.Text(), err)
				}
				n = int(f)
			}
		}
		if n < 0 {
			t.Fatalf("/metrics at %s has no %s", m.HTTPAddr(), name)
		}
		out = append(out, n)
	}
	return out
}

// readyz is m's /readyz status and body.
func readyz(m *harness.Meshdns) (int, string) {
	resp, err := httpClient.Get("http://" + m.HTTPAddr() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitReadyz waits until m's /readyz answers 200.
func waitReadyz(t *testing.T, m *harness.Meshdns, timeout time.Duration) {
	t.Helper()
	harness.Poll(t, timeout, 50*time.Millisecond, "/readyz 200", func() (bool, string) {
		resp, err := httpClient.Get("http://" + m.HTTPAddr() + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	})
}
