package registry

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

func TestDiffSnapshots(t *testing.T) {
	a, _, _ := SnapshotFromText(copyRegistry)
	b, _, _ := SnapshotFromText(copyRegistry + `
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped"}
peers/acme/laptop {"ip":"fdaa:0:18:fffe::2","region":"ams"}
machines/acme/api/0c01 {"region":"fra","ip":"fdaa:0:18:c::1","state":"started"}
`)
	want := []string{"apps/acme/api", "machines/acme/api/0c01", "machines/acme/web/0a01", "peers/acme/laptop"}
	if got := DiffSnapshots(a, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("diff %v, want %v", got, want)
	}
	if got := DiffSnapshots(a, a); len(got) != 0 {
		t.Fatalf("a snapshot differs from itself: %v", got)
	}
}

// TestReconcileRepairsDrift makes the store disagree with etcd behind the
// watch's back — as a lost event would — and checks that the reconcile
// names the key, counts it, and repairs it with a full load.
func TestReconcileRepairsDrift(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	ctx := t.Context()
	evs, _ := ParseText(DefaultPrefix, copyRegistry)
	for _, ev := range evs {
		if _, err := cli.Put(ctx, ev.Key, string(ev.Value)); err != nil {
			t.Fatal(err)
		}
	}
	st := NewStore(DefaultPrefix)
	sy := NewSyncer(SyncerConfig{Client: cli, Prefix: DefaultPrefix, Store: st,
		ProgressInterval: 100 * time.Millisecond, ReconcileInterval: 200 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sy.Run(rctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for !sy.Status().Ready {
		if time.Now().After(deadline) {
			t.Fatal("syncer never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// In a healthy run the reconcile finds nothing.
	for sy.Status().Reconciles == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reconcile ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := sy.Status().Drift; d != 0 {
		t.Fatalf("drift %d in a healthy run", d)
	}
	// A phantom machine etcd never held, at the snapshot's revision.
	bogus, _ := ParseText(DefaultPrefix, `machines/acme/web/0bad {"region":"ams","ip":"fdaa:0:18:a7b:1::66","state":"started"}`)
	st.Apply(st.Revision(), bogus)
	loads := sy.Status().Loads
	for st.Snapshot().Org("acme").App("web").Machine("0bad") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("drift not repaired: %+v", sy.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// At least one drifting key counted: a reconcile that runs again
	// (every 200 ms here) before the requested load lands counts the same
	// key again, which a slow machine may do.
	if s := sy.Status(); s.Drift == 0 || s.Loads <= loads {
		t.Fatalf("status after repair %+v", s)
	}
}
