package main

import (
	"runtime/debug"
	"testing"
)

// TestGCOwnerLoadRestoresWhatTheLoopWants: a full load runs at
// loadGCPercent; when the loop that follows the live heap changes its mind
// during the load, the end of the load sets the loop's new percentage, not
// the one from before the load (which the registry's deferred restore used
// to put back, leaving a stale GOGC until the loop's next change).
func TestGCOwnerLoadRestoresWhatTheLoopWants(t *testing.T) {
	gcPercent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	g := newGCOwner(100)
	g.follow(90)
	if p := gcPercent(); p != 90 {
		t.Fatalf("GC percentage %d after the loop set 90", p)
	}
	g.loadStart()
	if p := gcPercent(); p != loadGCPercent {
		t.Fatalf("GC percentage %d during a load, want %d", p, loadGCPercent)
	}
	g.follow(64) // the live heap grew meanwhile
	if p := gcPercent(); p != loadGCPercent {
		t.Errorf("the loop changed the GC percentage to %d during a load, want %d kept", p, loadGCPercent)
	}
	// Two loads at once (not done by one syncer, but cheap to get right).
	g.loadStart()
	g.loadEnd(nil)
	if p := gcPercent(); p != loadGCPercent {
		t.Errorf("GC percentage %d with a load still running, want %d", p, loadGCPercent)
	}
	g.loadEnd(nil)
	if p := gcPercent(); p != 64 {
		t.Errorf("GC percentage %d after the load, want 64, what the loop wants now", p)
	}
}
