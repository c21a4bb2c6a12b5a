package faults

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// Issue 10, item 1: etcd restored from a backup (`etcdctl snapshot save` …
// `snapshot restore` with the same name, peer URL and cluster token, so the
// same cluster and member ids at an older revision), or an embedded etcd
// whose data directory was lost while the local copy survived. meshdns must
// drop its snapshot, serve exactly etcd's contents — writes made after the
// restore included — and not be ready in between.

// restoreApps and restoreVMs are every app and machine the restore tests
// ever write.
var restoreApps = []string{"web", "old", "new"}

func restoreVMs() []appID {
	var ids []appID
	for i := 1; i <= 4; i++ {
		ids = append(ids, appID{"web", fmt.Sprintf("a%03x", i)})
	}
	for i := 1; i <= 8; i++ {
		ids = append(ids, appID{"old", fmt.Sprintf("b%03x", i)})
	}
	for i := 1; i <= 40; i++ {
		ids = append(ids, appID{"new", fmt.Sprintf("c%03x", i)})
	}
	return ids
}

// restoreProbes are the questions whose answers show all of mo.
func restoreProbes(mo model) []probe {
	ps := mo.listProbes(restoreApps)
	for _, v := range restoreVMs() {
		ps = append(ps, mo.vmProbe(v))
	}
	return ps
}

// putMachine writes one started machine of acme, raw (one revision each).
func putMachine(t *testing.T, cli *clientv3.Client, app, id string, a, b int) {
	t.Helper()
	putRaw(t, cli, "machines/"+orgName+"/"+app+"/"+id, fmt.Sprintf(`{"region":"ams","ip":"%s","state":"started"}`, ip(a, b)))
}

// waitRestored polls until meshdns is ready and answers every probe as mo
// says, and fails the test for every time it was ready while answering
// otherwise: a snapshot etcd does not continue must not be served as
// current. It returns how long the wait took.
func waitRestored(t *testing.T, m *harness.Meshdns, mo model, timeout time.Duration) time.Duration {
	t.Helper()
	ps := restoreProbes(mo)
	start := time.Now()
	var wrongWhileReady []string
	var lastBody string
	for {
		code, body, err := httpGet(m.HTTPAddr(), "/readyz")
		lastBody = strings.TrimSpace(body)
		wrong := mismatches(m.Addr(), ps)
		if err == nil && code == http.StatusOK {
			if len(wrong) == 0 {
				break
			}
			if len(wrongWhileReady) < 5 {
				wrongWhileReady = append(wrongWhileReady, fmt.Sprintf("at +%v: /readyz 200 while %d of %d answers differ from etcd, e.g. %s",
					time.Since(start).Round(time.Millisecond), len(wrong), len(ps), wrong[0]))
			}
		}
		if time.Since(start) > timeout {
			t.Fatalf("meshdns not ready with etcd's contents within %v; /readyz %d %q; %d of %d answers differ, e.g.:\n  %s",
				timeout, code, lastBody, len(wrong), len(ps), strings.Join(wrong[:min(len(wrong), 8)], "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(wrongWhileReady) > 0 {
		t.Errorf("meshdns reported ready while serving a snapshot etcd's history does not continue:\n  %s", strings.Join(wrongWhileReady, "\n  "))
	}
	return time.Since(start)
}

// wantResetLogged checks the reset was logged as an error with reason
// and counted in meshdns_registry_history_resets_total.
func wantResetLogged(t *testing.T, m *harness.Meshdns, reason string) {
	t.Helper()
	var found []string
	for _, e := range logsWith(m, "history is not the one the snapshot followed") {
		found = append(found, e.Level()+" "+e.Str("reason")+": "+e.Str("detail"))
		if e.Level() == "error" && e.Str("reason") == reason {
			t.Logf("logged: %s", e.Str("detail"))
			n := metric(t, m.HTTPAddr(), "meshdns_registry_history_resets_total")
			if n < 1 {
				t.Errorf("meshdns_registry_history_resets_total = %v, want at least 1", n)
			}
			return
		}
	}
	t.Errorf("no error logged for a history reset with reason %s; logged: %v", reason, found)
}

// TestRestoredEtcd restores a running meshdns's external etcd from a backup
// twice: once writing a little afterwards (etcd's revision stays behind
// meshdns's), once writing enough, while meshdns is frozen, that etcd's
// revision passes meshdns's before meshdns reconnects — the same revision
// numbers with other writes, which only the witness check sees.
func TestRestoredEtcd(t *testing.T) {
	t.Parallel()
	for _, diverged := range []bool{false, true} {
		name := "etcd behind meshdns"
		if diverged {
			name = "etcd past meshdns with another history"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := etcdtest.Cluster(t, 1)
			cli := c.Client(t)
			e := c.Member(0)
			seed(t, cli, []string{"web"}, nil)
			for i := 1; i <= 4; i++ {
				putMachine(t, cli, "web", fmt.Sprintf("a%03x", i), 1, i)
			}
			m := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args())
			waitReadyz(t, m.HTTPAddr(), http.StatusOK, 20*time.Second)

			backup := filepath.Join(t.TempDir(), "backup.db")
			e.SaveSnapshot(backup)
			saved, _ := currentRevision(t, cli)
			// Writes the backup does not have: meshdns serves them.
			for i := 1; i <= 8; i++ {
				putMachine(t, cli, "old", fmt.Sprintf("b%03x", i), 2, i)
			}
			ctx, cancel := ctx10s()
			_, err := cli.Delete(ctx, prefix+"machines/"+orgName+"/web/a001")
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			waitMatch(t, "the writes after the backup", 10*time.Second, restoreProbes(readModel(t, cli)), m.Addr())
			before, _ := currentRevision(t, cli)

			if diverged {
				m.Pause()
			}
			e.Stop()
			e.RestoreSnapshot(backup)
			e.Start()
			restored, _ := currentRevision(t, cli)
			// Writes after the restore: one, or enough to pass meshdns.
			n := 1
			if diverged {
				n = int(before-restored) + 3
			}
			for i := 1; i <= n; i++ {
				putMachine(t, cli, "new", fmt.Sprintf("c%03x", i), 3, i)
			}
			after, _ := currentRevision(t, cli)
			t.Logf("backup at revision %d; meshdns at %d; etcd restored at %d and written to %d", saved, before, restored, after)
			if restored != saved || diverged && after <= before || !diverged && after >= before {
				t.Fatalf("restore did not give the revisions the test needs")
			}
			if diverged {
				m.Resume()
			}
			took := waitRestored(t, m, readModel(t, cli), 30*time.Second)
			t.Logf("meshdns ready with the restored etcd's contents %v after the writes", took.Round(time.Millisecond))
			reason := "revision_behind"
			if diverged {
				reason = "history_diverged"
			}
			wantResetLogged(t, m, reason)

			// And it keeps following etcd.
			putMachine(t, cli, "new", "c028", 3, 0x28)
			waitMatch(t, "a write after the reload", 10*time.Second, restoreProbes(readModel(t, cli)), m.Addr())
		})
	}
}

// TestEmbeddedEtcdDataLost: meshdns stopped, its embedded etcd's data
// directory removed, its local copy kept, meshdns started again. The new
// etcd has the same cluster id at revision 1; the copy must not be served as
// current, and what is written to the new etcd must appear.
func TestEmbeddedEtcdDataLost(t *testing.T) {
	t.Parallel()
	m := harness.StartMeshdns(t, args(localCopyArgs...), harness.Wait(harness.WaitListening))
	cli := newClient(t, m.EtcdEndpoint())
	seed(t, cli, []string{"web", "old"}, nil)
	for i := 1; i <= 8; i++ {
		putMachine(t, cli, "old", fmt.Sprintf("b%03x", i), 2, i)
	}
	waitMatch(t, "the registry", 10*time.Second, restoreProbes(readModel(t, cli)), m.Addr())
	rev, cluster := currentRevision(t, cli)
	waitCopy(t, filepath.Join(m.DataDir(), "local-copy.json.gz"), cluster, rev)
	m.Stop()
	if err := os.RemoveAll(filepath.Join(m.DataDir(), "etcd")); err != nil {
		t.Fatal(err)
	}

	m.Restart()
	// The copy answers at once (stale, not ready) ...
	r := m.Query(t, "b001.vm.old.internal", dns.TypeAAAA, harness.QueryOptions{})
	t.Logf("right after the restart b001.vm.old.internal: %s with %d answers", harness.Rcode(r), len(r.Answer))
	// ... and the new etcd gets new writes.
	seed(t, cli, []string{"new"}, nil)
	putMachine(t, cli, "new", "c001", 3, 1)
	newRev, newCluster := currentRevision(t, cli)
	t.Logf("old etcd: cluster %x revision %d; new etcd: cluster %x revision %d", cluster, rev, newCluster, newRev)
	took := waitRestored(t, m, readModel(t, cli), 30*time.Second)
	t.Logf("ready with the new etcd's contents %v after the writes", took.Round(time.Millisecond))
	wantResetLogged(t, m, "revision_behind")
}
