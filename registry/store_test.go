package registry

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestStoreBeforeLoad(t *testing.T) {
	s := NewStore(DefaultPrefix)
	if s.Snapshot() != nil || s.Revision() != 0 {
		t.Fatal("a new store has a snapshot")
	}
	// Apply without a load works from an empty registry.
	f := newFakeEtcd()
	s.Apply(2, f.step(t, `
		put orgs/acme {"network":"fdaa:0:18::/48"}
		put apps/acme/web {}`))
	if got := normText(dump(t, s.Snapshot())); got != "org acme fdaa:0:18::/48\napp acme/web" || s.Revision() != 2 {
		t.Errorf("snapshot at %d:\n%s", s.Revision(), got)
	}
}

func TestStoreListener(t *testing.T) {
	type call struct {
		old, new *Snapshot
		evs      int
	}
	var calls []call
	s := NewStore(DefaultPrefix, WithListener(func(old, new *Snapshot, evs []Event) {
		calls = append(calls, call{old, new, len(evs)})
		if evs == nil && old != nil && old.Revision > new.Revision {
			t.Errorf("listener: load went back from %d to %d", old.Revision, new.Revision)
		}
	}))
	f := newFakeEtcd()
	s.Replace(f.rev, f.load(t, `orgs/acme {"network":"fdaa:0:18::/48"}`))
	first := s.Snapshot()
	s.Apply(f.rev, f.step(t, "put apps/acme/web {}\nput apps/acme/db {}"))
	second := s.Snapshot()
	s.Replace(f.rev, f.contents())
	if len(calls) != 3 {
		t.Fatalf("%d listener calls, want 3", len(calls))
	}
	if calls[0].old != nil || calls[0].new != first || calls[0].evs != 0 {
		t.Errorf("load call: %+v", calls[0])
	}
	if calls[1].old != first || calls[1].new != second || calls[1].evs != 2 {
		t.Errorf("apply call: %+v", calls[1])
	}
	if calls[2].old != second || calls[2].new != s.Snapshot() {
		t.Errorf("reload call: %+v", calls[2])
	}
}

// TestStorePagedLoad: a load added page by page equals Replace, and readers
// see the old snapshot until Commit.
func TestStorePagedLoad(t *testing.T) {
	f := newFakeEtcd()
	evs := f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}
		machines/acme/web/0a3 {"region":"iad","ip":"fdaa:0:18:a7b:3::2","state":"started"}`)
	s := NewStore(DefaultPrefix)
	s.Replace(1, evs[:1])
	before := s.Snapshot()
	l := s.BeginLoad()
	for _, ev := range evs {
		l.Add(ev)
		if s.Snapshot() != before {
			t.Fatal("readers see a load before Commit")
		}
	}
	l.Commit(f.rev)
	if got, want := dump(t, s.Snapshot()), dump(t, f.reloaded().Snapshot()); got != want {
		t.Errorf("paged load:\n%s\nwant:\n%s", got, want)
	}
	if s.Revision() != f.rev {
		t.Errorf("revision %d, want %d", s.Revision(), f.rev)
	}
}

// TestStoreLogsInvalid: a skipped value is logged once with its key and the
// rule it broke; again only when the reason changes.
func TestStoreLogsInvalid(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix, WithLogger(zap.New(core)))
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"bogus"}
		machines/acme/web/0a2 {"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"started"}`))
	skipped := func(key string) []observer.LoggedEntry {
		return logs.FilterMessage("registry value skipped").FilterField(zap.String("key", DefaultPrefix+key)).AllUntimed()
	}
	reason := func(e observer.LoggedEntry) string { return e.ContextMap()["reason"].(string) }

	if got := skipped("machines/acme/web/0a1"); len(got) != 1 || !strings.Contains(reason(got[0]), `state "bogus"`) {
		t.Fatalf("load logged %+v", logs.AllUntimed())
	}
	if got := logs.FilterMessage("registry value skipped").Len(); got != 1 {
		t.Errorf("%d values logged as skipped, want 1", got)
	}
	if logs.All()[0].Level != zap.WarnLevel {
		t.Errorf("logged at %v, want warn", logs.All()[0].Level)
	}
	// Unrelated changes do not log it again.
	s.Apply(f.rev, f.step(t, `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}`))
	s.Apply(f.rev, f.step(t, `put machines/acme/web/0a3 {"region":"iad","ip":"fdaa:0:18:a7b:3::2","state":"started"}`))
	if got := skipped("machines/acme/web/0a1"); len(got) != 1 {
		t.Errorf("logged %d times after unrelated changes", len(got))
	}
	// A new reason is logged.
	s.Apply(f.rev, f.step(t, `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:19::2","state":"started"}`))
	if got := skipped("machines/acme/web/0a1"); len(got) != 2 || !strings.Contains(reason(got[1]), "outside the org's network") {
		t.Errorf("after a new reason: %+v", got)
	}
	// Everything under an org that goes is logged, each key once.
	s.Apply(f.rev, f.step(t, `del orgs/acme`))
	for _, k := range []string{"machines/acme/web/0a2", "machines/acme/web/0a3"} {
		if got := skipped(k); len(got) != 1 || !strings.Contains(reason(got[0]), "org acme") {
			t.Errorf("%s: %+v", k, got)
		}
	}
	// A broken key is logged with the key itself.
	s.Apply(f.rev, f.step(t, `put machines/acme/oops {}`))
	if got := skipped("machines/acme/oops"); len(got) != 1 || !strings.Contains(reason(got[0]), "machines keys have 3") {
		t.Errorf("bad key: %+v", got)
	}
}

// TestStoreConcurrentReaders reads snapshots from several goroutines while
// one feeder applies changes (and now and then reloads in full). Every
// snapshot a reader gets must be one the feeder published, whole: its
// revision is that of a step, never lower than the reader's last one, and
// everything in it (machines, their metadata, owners, peers, the region)
// is exactly that step's state, never half of a step. Run with -race (CI
// does) it also proves readers and the feeder share nothing mutable.
func TestStoreConcurrentReaders(t *testing.T) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		apps/acme/web {}
		peers/acme/alice {"ip":"fdaa:0:18:a7c:9::2"}
		regions/ams {"lat":1,"lon":1}`))
	base := f.rev
	const steps, putsPerStep, ids, peerIDs = 300, 4, 20, 5

	// check is the whole state of one snapshot against the step its
	// revision says it is at; it returns that step (-1: none yet).
	check := func(snap *Snapshot) (int, error) {
		if (snap.Revision-base)%putsPerStep != 0 || snap.Revision < base || snap.Revision > base+steps*putsPerStep {
			return 0, fmt.Errorf("revision %d is no step's (base %d, %d puts a step)", snap.Revision, base, putsPerStep)
		}
		step := int((snap.Revision-base)/putsPerStep) - 1
		o := snap.Org("acme")
		if o == nil || snap.OrgOf(o.APIAddr()) != o {
			return step, fmt.Errorf("revision %d: org acme missing or not found by its network", snap.Revision)
		}
		a := o.App("web")
		if a == nil {
			return step, fmt.Errorf("revision %d: app web missing", snap.Revision)
		}
		if want := min(step+1, ids); a.Machines.Len() != want {
			return step, fmt.Errorf("revision %d (step %d): %d machines, want %d", snap.Revision, step, a.Machines.Len(), want)
		}
		for _, m := range a.Machines.All() {
			id, err := strconv.ParseInt(m.ID, 16, 32)
			if err != nil {
				return step, fmt.Errorf("machine id %q", m.ID)
			}
			// The last step that wrote this machine.
			last := step - ((step-int(id))%ids+ids)%ids
			if got, want := m.Metadata["k"], "v"+itoa(last); got != want {
				return step, fmt.Errorf("revision %d (step %d): machine %s has k=%s, want %s", snap.Revision, step, m.ID, got, want)
			}
			if a.Machine(m.ID) != m {
				return step, fmt.Errorf("revision %d: Machine(%s) is not the listed machine", snap.Revision, m.ID)
			}
			// The owner is this machine; the index may hold an older
			// version of it (only the metadata changes here).
			if w, ok := o.Owner(m.IP); !ok || w.Machine == nil || !sameHolder(w.Machine, m) {
				return step, fmt.Errorf("revision %d: the owner of %s is %+v, not machine %s", snap.Revision, m.IP, w, m.ID)
			}
		}
		if want := 1 + min(step+1, peerIDs); len(o.PeerNames()) != want {
			return step, fmt.Errorf("revision %d (step %d): peers %v, want %d", snap.Revision, step, o.PeerNames(), want)
		}
		for _, name := range o.PeerNames() {
			p := o.Peer(name)
			if w, ok := o.Owner(p.IP); p == nil || !ok || w.Peer != p {
				return step, fmt.Errorf("revision %d: peer %s not the owner of its address", snap.Revision, name)
			}
		}
		wantLat, wantGW := 1.0, step >= 0
		if step >= 0 {
			wantLat = float64(step % 90)
		}
		if r := snap.Region("ams"); r == nil || r.Lat != wantLat || len(snap.Regions()) != 1 {
			return step, fmt.Errorf("revision %d (step %d): region ams %+v, want lat %v", snap.Revision, step, r, wantLat)
		}
		if gw := snap.Gateway("ams"); (gw != nil) != wantGW {
			return step, fmt.Errorf("revision %d (step %d): gateway %+v", snap.Revision, step, gw)
		}
		return step, nil
	}

	var stop atomic.Bool
	var wg, ready sync.WaitGroup
	reads := make([]int, 4)
	for r := range reads {
		ready.Add(1)
		wg.Go(func() {
			last := int64(-1)
			for first := true; ; first = false {
				done := stop.Load() // one more read after the feeder ends
				snap := s.Snapshot()
				if snap.Revision < last {
					t.Errorf("reader %d: revision %d after %d", r, snap.Revision, last)
					return
				}
				last = snap.Revision
				step, err := check(snap)
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				reads[r]++
				if first {
					ready.Done()
				}
				if done {
					if step != steps-1 {
						t.Errorf("reader %d: last read at step %d, want %d", r, step, steps-1)
					}
					return
				}
			}
		})
	}
	ready.Wait()
	for i := range steps {
		ip := "fdaa:0:18:a7b:" + hex(i%ids) + "::2"
		evs := f.step(t, `
			put machines/acme/web/`+hex(i%ids)+` {"region":"ams","ip":"`+ip+`","state":"started","metadata":{"k":"v`+itoa(i)+`"}}
			put peers/acme/p`+itoa(i%peerIDs)+` {"ip":"fdaa:0:18:a7c:9::`+hex(i%peerIDs+3)+`"}
			put regions/ams {"lat":`+itoa(i%90)+`,"lon":1}
			put gateways/ams {"endpoint":"192.0.2.1:51820","public_key":"`+wgKey+`"}`)
		s.Apply(f.rev, evs)
		if i%50 == 0 {
			s.Replace(f.rev, f.contents())
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := s.InvalidCount(); n != 0 {
		t.Errorf("%d invalid values: %v", n, s.Invalid())
	}
	t.Logf("reads per reader: %v", reads)
}

// TestDataVersion: events and full loads move a snapshot's DataVersion; a
// revision that moves without events (progress notification) does not.
func TestDataVersion(t *testing.T) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, copyRegistry))
	v1 := s.Snapshot().DataVersion()
	s.Apply(f.rev+5, nil)
	if v := s.Snapshot().DataVersion(); v != v1 || s.Revision() != f.rev+5 {
		t.Fatalf("after a progress notification: version %d (was %d), revision %d", v, v1, s.Revision())
	}
	s.Apply(f.rev, f.step(t, `put machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped"}`))
	v2 := s.Snapshot().DataVersion()
	if v2 == v1 {
		t.Fatal("an event left the version")
	}
	s.Replace(f.rev, f.contents())
	if v := s.Snapshot().DataVersion(); v == v2 || v == v1 {
		t.Fatalf("a full load left the version at %d", v)
	}
}
