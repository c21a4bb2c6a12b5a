package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// localCopyArgs saves the local copy often, so the tests need not wait.
var localCopyArgs = []string{"--local-copy-interval", "200ms"}

// TestBootFromLocalCopy checks SPEC §4's local copy end to end:
//
//   - with etcd down, a restarted meshdns answers from its local copy within
//     a second of process start, with the data it had (not what was written
//     while it was down), and /readyz says it is not ready;
//   - when etcd comes back, it catches up from the copy's revision, not by a
//     full load (meshdns_registry_loads_total stays 0);
//   - a corrupt or cut-off copy is ignored with a clear log line and never
//     served: SERVFAIL until etcd answers, then a full load;
//   - a copy taken from another etcd cluster is replaced by a full load,
//     and the copy on disk is rewritten from the right cluster.
func TestBootFromLocalCopy(t *testing.T) {
	t.Parallel()
	a := etcdtest.Cluster(t, 1)
	cliA := a.Client(t)
	wA := registry.NewWriter(cliA, prefix)
	seed(t, cliA, []string{"web", "db"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(1, 1)),
		machineItem("web", "a002", "fra", ip(1, 2)),
		machineItem("web", "a003", "iad", ip(1, 3)),
		machineItem("db", "d001", "ams", ip(2, 1)),
		{Org: orgName, App: "db", ID: "d002", Region: "fra", IP: ip(2, 2), State: registry.StateStopped},
	})
	// Every machine that exists at some point, and every app.
	everyVM := []appID{{"web", "a001"}, {"web", "a002"}, {"web", "a003"}, {"web", "a004"}, {"db", "d001"}, {"db", "d002"}, {"api", "e001"}}
	everyApp := []string{"web", "db", "api"}
	probesOf := func(mo model) []probe {
		ps := mo.listProbes(everyApp)
		for _, v := range everyVM {
			ps = append(ps, mo.vmProbe(v))
		}
		return ps
	}

	dir := filepath.Join(t.TempDir(), "data")
	copyPath := filepath.Join(dir, "local-copy.json.gz")
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(a.Endpoints()...), harness.DataDir(dir), args(localCopyArgs...),
		harness.Wait(harness.WaitNone))
	m.WaitLoaded()
	old := readModel(t, cliA)
	waitMatch(t, "the seeded registry served", 10*time.Second, probesOf(old), m.Addr())
	rev, clusterA := currentRevision(t, cliA)
	waitCopy(t, copyPath, clusterA, rev)
	if code := m.Stop(); code != 0 {
		t.Errorf("meshdns exited %d on SIGINT", code)
	}

	// Changes while meshdns is down; then etcd goes down too.
	for _, mc := range []registry.Machine{
		{Org: orgName, App: "web", ID: "a004", Region: "syd", IP: ip(1, 4), State: registry.StateStarted},
		{Org: orgName, App: "api", ID: "e001", Region: "nrt", IP: ip(3, 1), State: registry.StateStarted},
	} {
		mustDo(t, "put "+mc.ID, func(ctx context.Context) error { return wA.PutMachine(ctx, mc) })
	}
	mustDo(t, "stop a001", func(ctx context.Context) error {
		return wA.SetMachineState(ctx, orgName, "web", "a001", registry.StateStopped)
	})
	mustDo(t, "rm a002", func(ctx context.Context) error { return wA.Delete(ctx, registry.MachineKey(orgName, "web", "a002")) })
	mustDo(t, "start d002", func(ctx context.Context) error {
		return wA.SetMachineState(ctx, orgName, "db", "d002", registry.StateStarted)
	})
	changed := readModel(t, cliA)
	a.Member(0).Stop()

	// Boot without etcd: the copy, at once.
	m.Restart()
	webOld := probe{name: "web.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(1, 1).String(), ip(1, 2).String(), ip(1, 3).String())}
	var boot time.Duration
	harness.Poll(t, 5*time.Second, time.Millisecond, "the first answer from the local copy", func() (bool, string) {
		if w := webOld.run(m.Addr(), 50*time.Millisecond); w != "" {
			return false, w
		}
		boot = time.Since(m.StartedAt())
		return true, ""
	})
	t.Logf("meshdns without etcd answered from its local copy %v after process start", boot.Round(time.Millisecond))
	if boot > localCopyAnswerBound {
		t.Errorf("first answer from the local copy %v after process start, want ≤ %v", boot.Round(time.Millisecond), localCopyAnswerBound)
	}
	if wrong := mismatches(m.Addr(), probesOf(old)); len(wrong) > 0 {
		t.Errorf("serving the local copy, %d answers differ from what meshdns had when it stopped:\n  %s", len(wrong), strings.Join(wrong, "\n  "))
	}
	code, body, err := httpGet(m.HTTPAddr(), "/readyz")
	t.Logf("/readyz while serving the copy: %d %q", code, strings.TrimSpace(body))
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "local copy") {
		t.Errorf("/readyz while serving the local copy: %d %q %v, want 503 saying it serves the local copy", code, body, err)
	}
	if len(logsWith(m, "serving the local copy")) == 0 {
		t.Errorf("meshdns did not log that it serves the local copy")
	}

	// etcd returns: catch up from the copy's revision.
	start := time.Now()
	a.Member(0).Start()
	took := waitMatch(t, "the changes made while meshdns was down", 20*time.Second, probesOf(changed), m.Addr())
	t.Logf("etcd back: the changes made meanwhile served %v after etcd was started (%v after it was ready)",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	body, _ = waitReadyz(t, m.HTTPAddr(), http.StatusOK, 20*time.Second)
	ms := metrics(t, m.HTTPAddr())
	t.Logf("after catching up: /readyz %q, full loads %v, watch restarts %v", body, ms["meshdns_registry_loads_total"], ms["meshdns_registry_watch_restarts_total"])
	if n := ms["meshdns_registry_loads_total"]; n != 0 {
		t.Errorf("meshdns_registry_loads_total = %v after catching up from the local copy, want 0 (resume from its revision)", n)
	}

	t.Log("corrupt local copies")
	m.Stop() // saves the copy once more
	rev, _ = currentRevision(t, cliA)
	waitCopy(t, copyPath, clusterA, rev)
	a.Member(0).Stop()
	good, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name      string
		data      []byte
		startEtcd bool
	}{
		{"cut off", good[:len(good)/2], false},
		{"bytes overwritten", overwrite(good), true},
	} {
		if err := os.WriteFile(copyPath, v.data, 0o600); err != nil {
			t.Fatal(err)
		}
		m.Restart()
		m.WaitListening()
		// Never served: SERVFAIL, not the copy's data, not NXDOMAIN.
		servfail := probe{name: "a003.vm.web.internal", qtype: dns.TypeAAAA, want: wantRcode(dns.RcodeServerFailure)}
		n := 0
		for end := time.Now().Add(time.Second); time.Now().Before(end); n++ {
			if w := servfail.run(m.Addr(), time.Second); w != "" {
				t.Fatalf("%s local copy: %s", v.name, w)
			}
			time.Sleep(20 * time.Millisecond)
		}
		e := m.WaitLog(5*time.Second, "ignoring the local copy", func(e harness.LogEntry) bool {
			return strings.Contains(e.Msg(), "ignoring the local copy")
		})
		t.Logf("%s local copy: %d queries in 1 s all SERVFAIL; logged %s %q path=%s error=%q", v.name, n, e.Level(), e.Msg(), e.Str("path"), e.Str("error"))
		if e.Level() != "warn" && e.Level() != "error" || e.Str("path") != copyPath || e.Str("error") == "" {
			t.Errorf("%s local copy: log entry %v, want a warning naming the file and the error", v.name, e)
		}
		if code, body, _ := httpGet(m.HTTPAddr(), "/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "registry not loaded yet") {
			t.Errorf("%s local copy: /readyz %d %q, want 503 \"registry not loaded yet\"", v.name, code, body)
		}
		if !v.startEtcd {
			m.Stop()
			continue
		}
		a.Member(0).Start()
		waitMatch(t, "the registry after a corrupt copy", 20*time.Second, probesOf(changed), m.Addr())
		waitReadyz(t, m.HTTPAddr(), http.StatusOK, 20*time.Second)
		if n := metric(t, m.HTTPAddr(), "meshdns_registry_loads_total"); n != 1 {
			t.Errorf("%s local copy: %v full loads once etcd was back, want 1", v.name, n)
		}
	}
	m.Stop()

	t.Log("a local copy from another etcd cluster")
	b := etcdtest.Cluster(t, 1)
	cliB := b.Client(t)
	seed(t, cliB, []string{"web", "bonly"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(0xf, 1)), // same name, other address
		machineItem("web", "a009", "fra", ip(0xf, 9)),
		machineItem("bonly", "b001", "iad", ip(0xf, 0x10)),
	})
	dirB := filepath.Join(t.TempDir(), "data")
	copyB := filepath.Join(dirB, "local-copy.json.gz")
	mb := harness.StartMeshdns(t, harness.EtcdEndpoints(b.Endpoints()...), harness.DataDir(dirB), args(localCopyArgs...))
	revB, clusterB := currentRevision(t, cliB)
	waitCopy(t, copyB, clusterB, revB)
	mb.Stop()
	revA, _ := currentRevision(t, cliA)
	t.Logf("copy of cluster %x at revision %d; meshdns now talks to cluster %x at revision %d", clusterB, revB, clusterA, revA)

	mf := harness.StartMeshdns(t, harness.EtcdEndpoints(a.Endpoints()...), harness.DataDir(dirB), args(localCopyArgs...))
	ps := append(probesOf(changed), changed.listProbes([]string{"bonly"})...)
	ps = append(ps, changed.vmProbe(appID{"bonly", "b001"}), changed.vmProbe(appID{"web", "a009"}),
		probe{name: "_apps.internal", qtype: dns.TypeTXT, want: wantTXT(strings.Join(changed.appNames(), ","))})
	took = waitMatch(t, "cluster A's registry instead of the foreign copy", 20*time.Second, ps, mf.Addr())
	waitReadyz(t, mf.HTTPAddr(), http.StatusOK, 20*time.Second)
	t.Logf("foreign copy replaced: answers match cluster %x %v after start", clusterA, took.Round(time.Millisecond))
	if n := metric(t, mf.HTTPAddr(), "meshdns_registry_loads_total"); n != 1 {
		t.Errorf("%v full loads after starting from a foreign copy, want 1", n)
	}
	for _, e := range logsWith(mf, "in full") {
		t.Logf("meshdns logged: %s reason=%q", e.Msg(), e.Str("reason"))
	}
	// The copy on disk is rewritten from cluster A, whole.
	revA, _ = currentRevision(t, cliA)
	waitCopy(t, copyB, clusterA, revA)
	fromDisk := registry.NewStore(prefix)
	if _, err := fromDisk.LoadCopy(copyB, prefix); err != nil {
		t.Fatal(err)
	}
	if diff := registry.DiffSnapshots(fromDisk.Snapshot(), storeFromEtcd(t, cliA).Snapshot()); len(diff) > 0 {
		t.Errorf("the local copy labelled cluster %x differs from that cluster's registry in %d keys: %v", clusterA, len(diff), diff)
	}
}

// mustDo runs a write, failing the test on error.
func mustDo(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	if err := f(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitCopy waits until the local copy at path is one of cluster, at rev or
// later.
func waitCopy(t *testing.T, path string, cluster uint64, rev int64) {
	t.Helper()
	harness.Poll(t, 10*time.Second, 20*time.Millisecond, "local copy saved", func() (bool, string) {
		st := registry.NewStore(prefix)
		id, err := st.LoadCopy(path, prefix)
		if err != nil {
			return false, err.Error()
		}
		return id == cluster && st.Revision() >= rev,
			fmt.Sprintf("copy of cluster %x at revision %d, want %x at %d or later", id, st.Revision(), cluster, rev)
	})
}

// storeFromEtcd loads everything under the prefix into a new Store.
func storeFromEtcd(t *testing.T, cli *clientv3.Client) *registry.Store {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var evs []registry.Event
	for _, kv := range resp.Kvs {
		evs = append(evs, registry.Event{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision})
	}
	st := registry.NewStore(prefix)
	st.Replace(resp.Header.Revision, evs)
	return st
}

// overwrite returns data with 16 bytes in the middle inverted.
func overwrite(data []byte) []byte {
	out := slices.Clone(data)
	for i := len(out) / 2; i < len(out)/2+16 && i < len(out); i++ {
		out[i] ^= 0xff
	}
	return out
}
