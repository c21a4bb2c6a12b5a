package faults

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// readyAfterRestart bounds how long a meshdns restarted on a current local
// copy may take to report ready. Confirming the copy takes one read of
// etcd's revision; the slack is for a loaded 2-core machine.
const readyAfterRestart = 10 * time.Second

// localCopyAnswerBound is how soon after its start a meshdns with a local
// copy must answer from it: 100-350 ms on a quiet 2-core machine, 1.2-1.5 s
// seen with the suite and three compiles sharing the cores. An answer that
// waited for etcd would take at least the client's 5 s dial timeout.
const localCopyAnswerBound = 2500 * time.Millisecond

// TestRestartOnCurrentLocalCopyBecomesReady is the regression test of
// 3f68cbc: meshdns restarted on a local copy that is as new as etcd (nothing
// was written while it was down) answers from the copy at once and becomes
// ready (/readyz 200) without a full load. Before that fix no watch event
// ever came to confirm such a copy, and /readyz stayed 503 for good.
func TestRestartOnCurrentLocalCopyBecomesReady(t *testing.T) {
	t.Parallel()
	a := etcdtest.Cluster(t, 1)
	cli := a.Client(t)
	seed(t, cli, []string{"web", "db"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(1, 1)),
		machineItem("web", "a002", "fra", ip(1, 2)),
		machineItem("db", "d001", "iad", ip(2, 1)),
		{Org: orgName, App: "db", ID: "d002", Region: "fra", IP: ip(2, 2), State: registry.StateStopped},
	})
	mo := readModel(t, cli)
	ps := mo.listProbes([]string{"web", "db", "api"})
	for _, v := range []appID{{"web", "a001"}, {"web", "a002"}, {"db", "d001"}, {"db", "d002"}, {"web", "a009"}} {
		ps = append(ps, mo.vmProbe(v))
	}

	dir := filepath.Join(t.TempDir(), "data")
	copyPath := filepath.Join(dir, "local-copy.json.gz")
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(a.Endpoints()...), harness.DataDir(dir), args(localCopyArgs...),
		harness.Wait(harness.WaitNone))
	m.WaitLoaded()
	waitMatch(t, "the seeded registry served", 10*time.Second, ps, m.Addr())
	waitReadyz(t, m.HTTPAddr(), http.StatusOK, 10*time.Second)
	rev, cluster := currentRevision(t, cli)
	waitCopy(t, copyPath, cluster, rev)
	if code := m.Stop(); code != 0 {
		t.Errorf("meshdns exited %d on SIGINT", code)
	}

	// The premise: the copy on disk is exactly as new as etcd, so no watch
	// event will come to confirm it.
	onDisk := registry.NewStore(prefix)
	if _, err := onDisk.LoadCopy(copyPath, prefix); err != nil {
		t.Fatalf("the local copy after stopping: %v", err)
	}
	if now, _ := currentRevision(t, cli); onDisk.Revision() != now {
		t.Fatalf("local copy at revision %d, etcd at %d: want them equal (nothing written since the copy)", onDisk.Revision(), now)
	}

	// Restart on the same data dir, nothing written in between.
	m.Restart()
	web := probe{name: "web.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(1, 1).String(), ip(1, 2).String())}
	var first time.Duration
	harness.Poll(t, 5*time.Second, time.Millisecond, "the first answer after the restart", func() (bool, string) {
		if w := web.run(m.Addr(), 50*time.Millisecond); w != "" {
			return false, w
		}
		first = time.Since(m.StartedAt())
		return true, ""
	})
	code, body, err := httpGet(m.HTTPAddr(), "/readyz")
	t.Logf("restarted on a current local copy: first answer %v after process start; /readyz then: %d %q %v",
		first.Round(time.Millisecond), code, strings.TrimSpace(body), err)
	if first > localCopyAnswerBound {
		t.Errorf("first answer %v after process start, want ≤ %v (from the local copy)", first.Round(time.Millisecond), localCopyAnswerBound)
	}

	body, _ = waitReadyz(t, m.HTTPAddr(), http.StatusOK, readyAfterRestart)
	ready := time.Since(m.StartedAt())
	t.Logf("restarted on a current local copy: /readyz 200 %q %v after process start", body, ready.Round(time.Millisecond))

	if wrong := mismatches(m.Addr(), ps); len(wrong) > 0 {
		t.Errorf("after the restart, %d answers differ from etcd:\n  %s", len(wrong), strings.Join(wrong, "\n  "))
	}
	if len(logsWith(m, "serving the local copy")) == 0 {
		t.Errorf("meshdns did not log that it serves the local copy: it did not start from it")
	}
	ms := metrics(t, m.HTTPAddr())
	t.Logf("after the restart: full loads %v, watch restarts %v, ready %v",
		ms["meshdns_registry_loads_total"], ms["meshdns_registry_watch_restarts_total"], ms["meshdns_registry_ready"])
	if n, ok := ms["meshdns_registry_loads_total"]; !ok || n != 0 {
		t.Errorf("meshdns_registry_loads_total = %v (exported: %v) after a restart on a current local copy, want 0", n, ok)
	}
	if ms["meshdns_registry_ready"] != 1 {
		t.Errorf("meshdns_registry_ready = %v with /readyz 200, want 1", ms["meshdns_registry_ready"])
	}
	if now, _ := currentRevision(t, cli); now != rev {
		t.Errorf("etcd moved from revision %d to %d during the test; the restart was not on a current copy", rev, now)
	}
}
