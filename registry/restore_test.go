package registry

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// These tests give a syncer a snapshot that followed one etcd's history
// and point it at another etcd under the first one's identity — what a
// restored backup, a lost data directory or a rebuilt cluster look like
// to meshdns (integration/faults does it with real restores).

// putText writes ParseText lines to etcd, one put each.
func putText(t *testing.T, cli *clientv3.Client, text string) {
	t.Helper()
	evs, err := ParseText(DefaultPrefix, text)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if _, err := cli.Put(ctxT(t), ev.Key, string(ev.Value)); err != nil {
			t.Fatal(err)
		}
	}
}

// machines returns n machine lines of acme's app web, ids from first.
func machineLines(first, n int, state string) string {
	var b strings.Builder
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "machines/acme/web/%04x {\"region\":\"ams\",\"ip\":\"fdaa:0:18:a7b:1::%x\",\"state\":%q}\n", i, i, state)
	}
	return b.String()
}

// followed runs a syncer on cli until it is ready and returns its store:
// a snapshot that followed cli's etcd's history.
func followed(t *testing.T, cli *clientv3.Client) *Store {
	t.Helper()
	s := NewStore(DefaultPrefix)
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s})
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	sy.stop(t)
	return s
}

func clusterOf(t *testing.T, cli *clientv3.Client) uint64 {
	t.Helper()
	resp, err := cli.Get(ctxT(t), "cluster-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.ClusterId
}

// observed is a logger whose entries the test can read.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}

// wantReset waits until the syncer has reset for reason exactly once, has
// loaded etcd in full and is ready, and checks the error was logged.
func wantReset(t *testing.T, sy *runningSyncer, cli *clientv3.Client, s *Store, logs *observer.ObservedLogs, reason string, loads uint64) {
	t.Helper()
	waitFor(t, "a history reset", func() bool { return len(sy.Status().HistoryResets) > 0 })
	// Until the full load lands, the store serves the discarded snapshot,
	// whose revision may be at or past etcd's: waitMatchesEtcd would
	// compare it (or the load's result, landing mid-compare) at once.
	waitFor(t, "the full load after the reset", func() bool { return sy.Status().Loads >= loads })
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready after the full load", func() bool { return sy.Status().Ready })
	st := sy.Status()
	if st.HistoryResets[reason] != 1 || len(st.HistoryResets) != 1 || st.Resetting != "" || st.Loads != loads {
		t.Errorf("status %+v, want one reset (%s), over, %d full loads in all", st, reason, loads)
	}
	errs := logs.FilterMessageSnippet("history is not the one the snapshot followed").FilterField(zap.String("reason", reason)).All()
	if len(errs) != 1 || errs[0].Level != zap.ErrorLevel {
		t.Errorf("logged %v, want one error with reason %s", errs, reason)
	}
	if s.Snapshot().Stale {
		t.Errorf("snapshot still stale after the full load")
	}
}

// A snapshot at a revision etcd has not reached — a local copy kept while
// etcd's data was lost — is discarded for a full load, not served as
// current.
func TestHistoryResetRevisionBehind(t *testing.T) {
	a, b := etcdtest.Embedded(t), etcdtest.Embedded(t)
	cliA, cliB := a.Client(t), b.Client(t)
	putText(t, cliA, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 20, "started"))
	putText(t, cliB, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(100, 2, "started"))
	old := followed(t, cliA)

	// As meshdns restarts: the local copy, then a syncer on "the same" etcd.
	path := filepath.Join(t.TempDir(), "copy.json.gz")
	if err := WriteCopy(path, DefaultPrefix, clusterOf(t, cliB), old.Snapshot()); err != nil {
		t.Fatal(err)
	}
	s := NewStore(DefaultPrefix)
	cluster, err := s.LoadCopy(path, DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if s.Snapshot().Witness() != old.Snapshot().Witness() || s.Snapshot().Witness().ModRevision == 0 {
		t.Fatalf("local copy's witness %+v, want the snapshot's %+v", s.Snapshot().Witness(), old.Snapshot().Witness())
	}
	log, logs := observed()
	sy := startSyncer(t, SyncerConfig{Client: cliB, Store: s, ClusterID: cluster, Log: log})
	wantReset(t, sy, cliB, s, logs, ResetRevisionBehind, 1)
}

// etcd past the snapshot's revision with another history — written again
// after a restore — is told apart by the witness, not the revision.
func TestHistoryResetDiverged(t *testing.T) {
	a, b := etcdtest.Embedded(t), etcdtest.Embedded(t)
	cliA, cliB := a.Client(t), b.Client(t)
	putText(t, cliA, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 5, "started"))
	putText(t, cliB, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 5, "stopped")+machineLines(50, 5, "started"))
	old := followed(t, cliA)
	if etcdRevision(t, cliB) <= old.Revision() {
		t.Fatalf("etcd B at %d, want it past the snapshot's %d", etcdRevision(t, cliB), old.Revision())
	}
	log, logs := observed()
	sy := startSyncer(t, SyncerConfig{Client: cliB, Store: old, ClusterID: clusterOf(t, cliB), Log: log})
	wantReset(t, sy, cliB, old, logs, ResetDiverged, 1)
}

// A snapshot from another cluster is a reset too.
func TestHistoryResetClusterChanged(t *testing.T) {
	a, b := etcdtest.Embedded(t), etcdtest.Embedded(t)
	cliA, cliB := a.Client(t), b.Client(t)
	putText(t, cliA, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 3, "started"))
	putText(t, cliB, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 3, "started"))
	old := followed(t, cliA)
	// Embedded etcds all have one cluster id (same name, peer URL and
	// token), like a restored one; another cluster has another.
	log, logs := observed()
	sy := startSyncer(t, SyncerConfig{Client: cliB, Store: old, ClusterID: clusterOf(t, cliB) ^ 0x5a5a, Log: log})
	wantReset(t, sy, cliB, old, logs, ResetClusterChanged, 1)
}

// A reconcile refused as a future revision resets instead of being skipped.
func TestReconcileFutureRevisionResets(t *testing.T) {
	a, b := etcdtest.Embedded(t), etcdtest.Embedded(t)
	cliA, cliB := a.Client(t), b.Client(t)
	putText(t, cliA, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 20, "started"))
	old := followed(t, cliA)
	log, logs := observed()
	sy := NewSyncer(SyncerConfig{Client: cliB, Store: old, Prefix: DefaultPrefix, Log: log})
	_, err := sy.Reconcile(ctxT(t))
	if !errors.Is(err, errHistoryReset) {
		t.Fatalf("Reconcile at revision %d on an etcd at %d: %v, want a history reset", old.Revision(), etcdRevision(t, cliB), err)
	}
	st := sy.Status()
	if st.HistoryResets[ResetFutureRevision] != 1 || st.Resetting != ResetFutureRevision || st.Ready {
		t.Errorf("status %+v, want a pending future_revision reset, not ready", st)
	}
	if n := logs.FilterField(zap.String("reason", ResetFutureRevision)).Len(); n != 1 {
		t.Errorf("%d log entries for the reset, want 1", n)
	}
}

// The same history checks out: resumed from its revision, no reset, no
// full load — also when the witness's revision was compacted meanwhile.
func TestHistoryCheckPassesOnTheSameHistory(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			e := etcdtest.Embedded(t)
			cli := e.Client(t)
			putText(t, cli, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 5, "started"))
			s := followed(t, cli)
			w := s.Snapshot().Witness()
			putText(t, cli, machineLines(100, 3, "started"))
			if compact {
				if _, err := cli.Compact(ctxT(t), etcdRevision(t, cli)); err != nil {
					t.Fatal(err)
				}
			}
			log, logs := observed()
			sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, Log: log})
			waitMatchesEtcd(t, cli, s)
			waitFor(t, "ready", func() bool { return sy.Status().Ready })
			st := sy.Status()
			wantLoads := uint64(0)
			if compact {
				wantLoads = 1 // the watch's start revision is gone
			}
			if len(st.HistoryResets) != 0 || st.Loads != wantLoads {
				t.Errorf("status %+v, want no reset and %d full loads (witness %+v)", st, wantLoads, w)
			}
			if n := logs.FilterLevelExact(zap.ErrorLevel).Len(); n != 0 {
				t.Errorf("%d errors logged: %v", n, logs.FilterLevelExact(zap.ErrorLevel).All())
			}
		})
	}
}

// Connect makes the client in Run, retried until it works; Client waits
// for it.
func TestSyncerConnectsInBackground(t *testing.T) {
	e := etcdtest.Embedded(t)
	putText(t, e.Client(t), "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n")
	var calls atomic.Int32
	s := NewStore(DefaultPrefix)
	log, logs := observed()
	sy := startSyncer(t, SyncerConfig{Store: s, Log: log, Connect: func(ctx context.Context) (*clientv3.Client, error) {
		if calls.Add(1) < 3 {
			return nil, errors.New("etcd unreachable (test)")
		}
		return clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), Context: ctx, Logger: zap.NewNop()})
	}})
	if cli := sy.Client(ctxT(t)); cli == nil {
		t.Fatal("Client returned nil")
	}
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	if n := calls.Load(); n != 3 {
		t.Errorf("Connect called %d times, want 3", n)
	}
	if n := logs.FilterMessageSnippet("etcd client failed").FilterField(zap.Error(errors.New("etcd unreachable (test)"))).Len(); n != 2 {
		t.Errorf("%d warnings about the failed client, want 2: %v", n, logs.All())
	}
}

// A running syncer whose etcd (a real process) goes away and comes back:
// with the same data, the connection drop restarts the watch, the check
// passes and nothing is reloaded; restored from a backup, it resets.
func TestHistoryAcrossEtcdRestarts(t *testing.T) {
	c := etcdtest.Cluster(t, 1)
	e := c.Member(0)
	cli := c.Client(t)
	putText(t, cli, "orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n"+machineLines(1, 3, "started"))
	log, logs := observed()
	s := NewStore(DefaultPrefix)
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, Log: log})
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	backup := filepath.Join(t.TempDir(), "backup.db")
	e.SaveSnapshot(backup)

	// The same etcd, stopped and started: no reset, no reload.
	putText(t, cli, machineLines(10, 3, "started"))
	e.Stop()
	e.Start()
	putText(t, cli, machineLines(20, 1, "started"))
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	if st := sy.Status(); len(st.HistoryResets) != 0 || st.Loads != 1 || st.WatchRestarts == 0 {
		t.Errorf("after a restart of the same etcd: status %+v, want no reset, one load, a watch restart", st)
	}

	// Restored from the backup, with one write: behind the snapshot.
	e.Stop()
	e.RestoreSnapshot(backup)
	e.Start()
	putText(t, cli, machineLines(30, 1, "started"))
	wantReset(t, sy, cli, s, logs, ResetRevisionBehind, 2)
}
