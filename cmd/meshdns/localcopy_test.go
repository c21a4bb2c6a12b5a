package main

import (
	"context"
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
)

// TestLocalCopySavedWhenDataChanges: the saver writes the copy when what
// the snapshot serves changes, not when only etcd's revision moved (a
// progress notification) — that it refreshes only every refreshSaves
// intervals — and once more at shutdown.
func TestLocalCopySavedWhenDataChanges(t *testing.T) {
	const prefix = registry.DefaultPrefix
	o := &options{dataDir: t.TempDir(), etcdPrefix: prefix, localCopyInterval: 10 * time.Millisecond}
	store := registry.NewStore(prefix)
	sy := registry.NewSyncer(registry.SyncerConfig{Store: store, Prefix: prefix, ClusterID: 7})
	evs, err := registry.ParseText(prefix, `
orgs/acme {"network":"fdaa:0:18::/48"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`)
	if err != nil {
		t.Fatal(err)
	}
	store.Replace(10, evs)
	savedRev := func() int64 {
		s := registry.NewStore(prefix)
		if _, err := s.LoadCopy(localCopyPath(o), prefix); err != nil {
			return 0
		}
		return s.Revision()
	}
	waitRev := func(want int64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for savedRev() != want {
			if time.Now().After(deadline) {
				t.Fatalf("local copy at revision %d, want %d", savedRev(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); saveLocalCopies(ctx, o, store, sy, nopLogger()) }()
	waitRev(10, 5*time.Second)

	// Only the revision moves: not saved for refreshSaves intervals.
	start := time.Now()
	store.Apply(15, nil)
	time.Sleep(o.localCopyInterval * refreshSaves / 2)
	if r := savedRev(); r != 10 && time.Since(start) < o.localCopyInterval*refreshSaves {
		t.Fatalf("copy saved at revision %d after the revision alone moved", r)
	}
	waitRev(15, 5*time.Second)

	// A change is saved within an interval or so.
	more, _ := registry.ParseText(prefix, `machines/acme/web/0a02 {"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"started"}`)
	store.Apply(16, more)
	waitRev(16, 2*time.Second)

	// At shutdown the latest revision is saved even without a change.
	store.Apply(20, nil)
	cancel()
	<-done
	if r := savedRev(); r != 20 {
		t.Fatalf("after shutdown the copy is at revision %d, want 20", r)
	}
}
