package registry

import (
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
// one feeder applies changes; run with -race it proves readers and the
// feeder share nothing mutable.
func TestStoreConcurrentReaders(t *testing.T) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		apps/acme/web {}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
		regions/ams {"lat":1,"lon":1}`))
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				snap := s.Snapshot()
				snap.RangeOrgs(func(o *Org) bool {
					for _, name := range o.AppNames() {
						if a := o.App(name); a != nil {
							for _, m := range a.Machines {
								_ = a.Machine(m.ID)
								_, _ = o.Owner(m.IP)
								_ = m.Region + m.State + m.Metadata["k"]
							}
						}
					}
					for _, p := range o.PeerNames() {
						_ = o.Peer(p)
					}
					_ = snap.OrgOf(o.APIAddr())
					return true
				})
				for code := range snap.Regions() {
					_ = snap.Region(code)
				}
				_ = snap.Gateway("ams")
			}
		})
	}
	for i := range 300 {
		ip := "fdaa:0:18:a7b:" + hex(i%20) + "::2"
		s.Apply(f.rev, f.step(t, `
			put machines/acme/web/`+hex(i%20)+` {"region":"ams","ip":"`+ip+`","state":"started","metadata":{"k":"v`+itoa(i)+`"}}
			put peers/acme/p`+itoa(i%5)+` {"ip":"fdaa:0:18:a7b:9::`+hex(i%5+3)+`"}
			put regions/ams {"lat":`+itoa(i%90)+`,"lon":1}
			put gateways/ams {"endpoint":"192.0.2.1:51820","public_key":"`+wgKey+`"}`))
		if i%50 == 0 {
			s.Replace(f.rev, f.contents())
		}
	}
	stop.Store(true)
	wg.Wait()
	_ = s.InvalidCount()
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
