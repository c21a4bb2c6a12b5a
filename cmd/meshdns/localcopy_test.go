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
// intervals — and once more at shutdown. The ticks' times are the test's,
// so a slow machine changes nothing.
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
	// The saver's decisions, at ticks whose time the test sets.
	t0 := time.Now()
	tick := func(n int) time.Time { return t0.Add(time.Duration(n) * o.localCopyInterval) }
	c := newCopySaver(o, store, sy, nopLogger(), t0)
	c.save(tick(1), false)
	if r := savedRev(); r != 10 {
		t.Fatalf("after the first tick the copy is at revision %d, want 10", r)
	}

	// Only the revision moves: not saved for refreshSaves intervals, then
	// saved.
	store.Apply(15, nil)
	for n := 2; n < 1+refreshSaves; n++ {
		c.save(tick(n), false)
		if r := savedRev(); r != 10 {
			t.Fatalf("copy saved at revision %d at tick %d, %d intervals after the last save, when only the revision moved", r, n, n-1)
		}
	}
	c.save(tick(1+refreshSaves), false)
	if r := savedRev(); r != 15 {
		t.Fatalf("copy at revision %d %d intervals after the last save, want 15", r, refreshSaves)
	}

	// A change is saved at the next tick.
	more, _ := registry.ParseText(prefix, `machines/acme/web/0a02 {"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"started"}`)
	store.Apply(16, more)
	c.save(tick(2+refreshSaves), false)
	if r := savedRev(); r != 16 {
		t.Fatalf("copy at revision %d the tick after a change, want 16", r)
	}

	// The running saver: saves at its first tick, and at shutdown the
	// latest revision even without a change.
	store.Apply(18, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); saveLocalCopies(ctx, o, store, sy, nopLogger()) }()
	deadline := time.Now().Add(5 * time.Second)
	for savedRev() != 18 {
		if time.Now().After(deadline) {
			t.Fatalf("local copy at revision %d, want 18", savedRev())
		}
		time.Sleep(5 * time.Millisecond)
	}
	store.Apply(20, nil)
	cancel()
	<-done
	if r := savedRev(); r != 20 {
		t.Fatalf("after shutdown the copy is at revision %d, want 20", r)
	}
}
