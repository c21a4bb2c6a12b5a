package registry

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// storeCase is a registry (ParseText lines, loaded with Replace) followed by
// steps of etcd events ("put <key> <json>" / "del <key>" lines, applied with
// one Store.Apply each). After the load and after every step the snapshot's
// dump must equal want and the invalid keys must be exactly those listed in
// invalid ("<key>: <part of the reason>" lines).
//
// Every step also checks three things for free:
//   - a full load of etcd's contents at that point gives the same dump and
//     the same invalid keys (incremental updates agree with a reload);
//   - every earlier snapshot still dumps as it did (snapshots are immutable);
//   - the snapshot's revision is etcd's.
type storeCase struct {
	name    string
	initial string
	want    string
	invalid string
	steps   []storeStep
}

type storeStep struct {
	name    string
	events  string
	want    string
	invalid string
	check   func(t *testing.T, s *Snapshot)
}

func runStoreCase(t *testing.T, tc storeCase) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, tc.initial))
	type seen struct {
		name string
		snap *Snapshot
		dump string
	}
	var history []seen
	check := func(name, want, invalid string) {
		t.Helper()
		snap := s.Snapshot()
		got := dump(t, snap)
		if normText(got) != normText(want) {
			t.Errorf("%s: snapshot:\n%s\nwant:\n%s", name, got, normText(want))
		}
		checkInvalid(t, name, s, invalid)
		if snap.Revision != f.rev {
			t.Errorf("%s: snapshot revision %d, want %d", name, snap.Revision, f.rev)
		}
		r := f.reloaded()
		if reload := dump(t, r.Snapshot()); reload != got {
			t.Errorf("%s: a full load of the same contents differs:\nincremental:\n%s\nfull load:\n%s", name, got, reload)
		}
		if a, b := invalidText(s), invalidText(r); a != b {
			t.Errorf("%s: invalid keys differ from a full load:\nincremental:\n%s\nfull load:\n%s", name, a, b)
		}
		for _, h := range history {
			if d := dump(t, h.snap); d != h.dump {
				t.Errorf("%s: the snapshot of %q changed:\nwas:\n%s\nnow:\n%s", name, h.name, h.dump, d)
			}
		}
		history = append(history, seen{name, snap, got})
	}
	check("initial load", tc.want, tc.invalid)
	for _, st := range tc.steps {
		s.Apply(f.rev+1, nil) // an empty batch (progress) changes nothing
		evs := f.step(t, st.events)
		s.Apply(f.rev, evs)
		check(st.name, st.want, st.invalid)
		if st.check != nil && !t.Failed() {
			st.check(t, s.Snapshot())
		}
	}
}

func checkInvalid(t *testing.T, step string, s *Store, want string) {
	t.Helper()
	inv := s.Invalid()
	wantKeys := map[string]string{}
	for _, line := range strings.Split(normText(want), "\n") {
		if line == "" {
			continue
		}
		k, reason, _ := strings.Cut(line, ": ")
		wantKeys[DefaultPrefix+k] = reason
	}
	if s.InvalidCount() != len(inv) {
		t.Errorf("%s: InvalidCount() = %d, Invalid() has %d", step, s.InvalidCount(), len(inv))
	}
	bad := len(inv) != len(wantKeys)
	for k, reason := range wantKeys {
		if got, ok := inv[k]; !ok || !strings.Contains(got, reason) {
			bad = true
		}
	}
	if bad {
		t.Errorf("%s: invalid keys:\n%s\nwant:\n%s", step, invalidText(s), normText(want))
	}
}

func TestStoreMachines(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`,
		want: `
			org acme fdaa:0:18::/48
			app acme/web
			machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
			owners acme fdaa:0:18:a7b:1::2=web/0a1`,
		steps: []storeStep{{
			name:   "add a machine",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`,
		}, {
			name:   "stopped is still deployed",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"stopped"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				machine acme/web/0a2 iad stopped fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`,
			check: func(t *testing.T, s *Snapshot) {
				if m := s.Org("acme").App("web").Machine("0a2"); m == nil || m.Started() || !m.Deployed() {
					t.Errorf("stopped machine: %+v", m)
				}
			},
		}, {
			name:   "destroyed is gone",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"destroyed"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
			check: func(t *testing.T, s *Snapshot) {
				if m := s.Org("acme").App("web").Machine("0a2"); m != nil {
					t.Errorf("destroyed machine still found: %+v", m)
				}
				if _, ok := s.Org("acme").Owner(netip.MustParseAddr("fdaa:0:18:a7b:2::2")); ok {
					t.Error("destroyed machine still owns its address")
				}
			},
		}, {
			name:   "started again",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`,
		}, {
			name:   "skip_registration is gone",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started","skip_registration":true}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
		}, {
			name:   "move to another region",
			events: `put machines/acme/web/0a1 {"region":"syd","ip":"fdaa:0:18:a7b:1::2","state":"started"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 syd started fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
			check: func(t *testing.T, s *Snapshot) {
				w, _ := s.Org("acme").Owner(netip.MustParseAddr("fdaa:0:18:a7b:1::2"))
				if w.Region() != "syd" {
					t.Errorf("owner region %q, want syd", w.Region())
				}
			},
		}, {
			name:   "new address, process group and metadata",
			events: `put machines/acme/web/0a1 {"region":"syd","ip":"fdaa:0:18:a7b:7::2","state":"started","process_group":"worker","metadata":{"role":"primary","zone":"b"}}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a1 syd started fdaa:0:18:a7b:7::2 group=worker meta=role:primary meta=zone:b
				owners acme fdaa:0:18:a7b:7::2=web/0a1`,
		}, {
			// 0a2 (skip_registration) remains in etcd, but nothing deployed
			// is left and there is no apps/ key: the app is gone.
			name:   "delete the last deployed machine",
			events: `del machines/acme/web/0a1`,
			want:   `org acme fdaa:0:18::/48`,
			check: func(t *testing.T, s *Snapshot) {
				if a := s.Org("acme").App("web"); a != nil || len(s.Org("acme").AppNames()) != 0 {
					t.Errorf("app web still exists: %+v", a)
				}
			},
		}, {
			name:   "registered again",
			events: `put machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web
				machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:2::2=web/0a2`,
		}, {
			name: "several events in one batch, same key twice",
			events: `
				put machines/acme/web/0a3 {"region":"ams","ip":"fdaa:0:18:a7b:3::2","state":"started"}
				put machines/acme/web/0a3 {"region":"ams","ip":"fdaa:0:18:a7b:3::2","state":"stopping"}
				del machines/acme/web/0a2
				put machines/acme/api/0b1 {"region":"ams","ip":"fdaa:0:18:a7b:4::2","state":"starting"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				machine acme/api/0b1 ams starting fdaa:0:18:a7b:4::2
				app acme/web
				machine acme/web/0a3 ams stopping fdaa:0:18:a7b:3::2
				owners acme fdaa:0:18:a7b:3::2=web/0a3 fdaa:0:18:a7b:4::2=api/0b1`,
		}},
	})
}

// TestStoreMachineStates: every state but destroyed is deployed; only
// started is started.
func TestStoreMachineStates(t *testing.T) {
	for _, state := range States {
		snap, _, err := SnapshotFromText(`
			orgs/acme {"network":"fdaa:0:18::/48"}
			apps/acme/web {}
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"` + state + `"}`)
		if err != nil {
			t.Fatal(err)
		}
		m := snap.Org("acme").App("web").Machine("0a1")
		if (m != nil) != (state != StateDestroyed) {
			t.Errorf("state %s: deployed = %v", state, m != nil)
		}
		if m != nil && m.Started() != (state == StateStarted) {
			t.Errorf("state %s: Started() = %v", state, m.Started())
		}
	}
}

func TestStoreApps(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			apps/acme/api {}`,
		want: `
			org acme fdaa:0:18::/48
			app acme/api`,
		steps: []storeStep{{
			name:   "app with a flycast address and no machines",
			events: `put apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web flycast=fdaa:0:18:0:1::5`,
		}, {
			name:   "a machine joins",
			events: `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web flycast=fdaa:0:18:0:1::5
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
		}, {
			name:   "its last machine destroyed: the apps/ key keeps the app",
			events: `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"destroyed"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web flycast=fdaa:0:18:0:1::5`,
		}, {
			name:   "apps/ key deleted: only a destroyed machine is left, so no app",
			events: `del apps/acme/web`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api`,
			check: func(t *testing.T, s *Snapshot) {
				if got := s.Org("acme").AppNames(); !slices.Equal(got, []string{"api"}) {
					t.Errorf("AppNames = %v", got)
				}
			},
		}, {
			name:   "app exists through a machine key only",
			events: `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web
				machine acme/web/0a1 ams stopped fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
		}, {
			name:   "apps/ key added without flycast",
			events: `put apps/acme/web {}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web
				machine acme/web/0a1 ams stopped fdaa:0:18:a7b:1::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1`,
		}, {
			name:   "machine deleted: apps/ key keeps the app",
			events: `del machines/acme/web/0a1`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web`,
		}, {
			name: "destroyed and skip_registration machines make no app",
			events: `
				del apps/acme/web
				put machines/acme/gone/0c1 {"region":"ams","ip":"fdaa:0:18:a7b:5::2","state":"destroyed"}
				put machines/acme/hidden/0c2 {"region":"ams","ip":"fdaa:0:18:a7b:6::2","state":"started","skip_registration":true}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api`,
			check: func(t *testing.T, s *Snapshot) {
				for _, a := range []string{"web", "gone", "hidden"} {
					if s.Org("acme").App(a) != nil {
						t.Errorf("app %s exists", a)
					}
				}
			},
		}, {
			name: "app names stay sorted",
			events: `
				put apps/acme/zeta {}
				put apps/acme/alpha {}
				put machines/acme/mid/0d1 {"region":"ams","ip":"fdaa:0:18:a7b:8::2","state":"started"}
				put apps/acme/a-1 {}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/a-1
				app acme/alpha
				app acme/api
				app acme/mid
				machine acme/mid/0d1 ams started fdaa:0:18:a7b:8::2
				app acme/zeta
				owners acme fdaa:0:18:a7b:8::2=mid/0d1`,
			check: func(t *testing.T, s *Snapshot) {
				if got := s.Org("acme").AppNames(); !slices.Equal(got, []string{"a-1", "alpha", "api", "mid", "zeta"}) {
					t.Errorf("AppNames = %v", got)
				}
			},
		}},
	})
}

func TestStorePeers(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			peers/acme/carol {"ip":"fdaa:0:18:a7b:9::3","region":"iad"}
			peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2","region":"ams","public_key":"` + wgKey + `"}`,
		want: `
			org acme fdaa:0:18::/48
			peer acme/alice ams fdaa:0:18:a7b:9::2
			peer acme/carol iad fdaa:0:18:a7b:9::3
			owners acme fdaa:0:18:a7b:9::2=peer/alice fdaa:0:18:a7b:9::3=peer/carol`,
		steps: []storeStep{{
			name: "add peers; names stay sorted",
			events: `
				put peers/acme/bob {"ip":"fdaa:0:18:a7b:9::4"}
				put peers/acme/interactive-x {"ip":"fdaa:0:18:a7b:9::5"}`,
			want: `
				org acme fdaa:0:18::/48
				peer acme/alice ams fdaa:0:18:a7b:9::2
				peer acme/bob - fdaa:0:18:a7b:9::4
				peer acme/carol iad fdaa:0:18:a7b:9::3
				peer acme/interactive-x - fdaa:0:18:a7b:9::5
				owners acme fdaa:0:18:a7b:9::2=peer/alice fdaa:0:18:a7b:9::3=peer/carol fdaa:0:18:a7b:9::4=peer/bob fdaa:0:18:a7b:9::5=peer/interactive-x`,
			check: func(t *testing.T, s *Snapshot) {
				if got := s.Org("acme").PeerNames(); !slices.Equal(got, []string{"alice", "bob", "carol", "interactive-x"}) {
					t.Errorf("PeerNames = %v", got)
				}
				w, ok := s.Org("acme").Owner(netip.MustParseAddr("fdaa:0:18:a7b:9::2"))
				if !ok || w.Peer == nil || w.Peer.Name != "alice" || w.Machine != nil || w.Region() != "ams" {
					t.Errorf("owner of alice's address: %+v", w)
				}
			},
		}, {
			name: "peer outside the org; peer moved; peer deleted",
			events: `
				put peers/acme/bob {"ip":"fdaa:0:19:a7b:9::4"}
				put peers/acme/carol {"ip":"fdaa:0:18:a7b:9::6","region":"syd"}
				del peers/acme/interactive-x`,
			want: `
				org acme fdaa:0:18::/48
				peer acme/alice ams fdaa:0:18:a7b:9::2
				peer acme/carol syd fdaa:0:18:a7b:9::6
				owners acme fdaa:0:18:a7b:9::2=peer/alice fdaa:0:18:a7b:9::6=peer/carol`,
			invalid: `peers/acme/bob: ip fdaa:0:19:a7b:9::4: outside the org's network fdaa:0:18::/48`,
		}, {
			name:   "peer fixed",
			events: `put peers/acme/bob {"ip":"fdaa:0:18:a7b:9::4"}`,
			want: `
				org acme fdaa:0:18::/48
				peer acme/alice ams fdaa:0:18:a7b:9::2
				peer acme/bob - fdaa:0:18:a7b:9::4
				peer acme/carol syd fdaa:0:18:a7b:9::6
				owners acme fdaa:0:18:a7b:9::2=peer/alice fdaa:0:18:a7b:9::4=peer/bob fdaa:0:18:a7b:9::6=peer/carol`,
		}},
	})
}

func TestStoreOrgs(t *testing.T) {
	const initial = `
		orgs/acme {"network":"fdaa:0:18::/48"}
		orgs/beta {"network":"fdaa:0:19::/48"}
		apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2","region":"ams"}
		machines/beta/api/0c1 {"region":"syd","ip":"fdaa:0:19:a7b:1::2","state":"started"}`
	const full = `
		org acme fdaa:0:18::/48
		app acme/web flycast=fdaa:0:18:0:1::5
		machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
		peer acme/alice ams fdaa:0:18:a7b:9::2
		owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:9::2=peer/alice
		org beta fdaa:0:19::/48
		app beta/api
		machine beta/api/0c1 syd started fdaa:0:19:a7b:1::2
		owners beta fdaa:0:19:a7b:1::2=api/0c1`
	const betaOnly = `
		org beta fdaa:0:19::/48
		app beta/api
		machine beta/api/0c1 syd started fdaa:0:19:a7b:1::2
		owners beta fdaa:0:19:a7b:1::2=api/0c1`
	acmeGone := func(t *testing.T, s *Snapshot) {
		for _, a := range []string{"fdaa:0:18::3", "fdaa:0:18:a7b:1::2", "fdaa:0:18:a7b:9::2"} {
			if o := s.OrgOf(netip.MustParseAddr(a)); o != nil {
				t.Errorf("OrgOf(%s) = %s, want nil", a, o.Name)
			}
		}
		if s.Org("acme") != nil || s.OrgCount() != 1 {
			t.Errorf("org acme still served (%d orgs)", s.OrgCount())
		}
	}
	runStoreCase(t, storeCase{
		initial: initial,
		want:    full,
		steps: []storeStep{{
			name:   "org removed: everything under it goes, and waits",
			events: `del orgs/acme`,
			want:   betaOnly,
			invalid: `
				apps/acme/web: org acme is not registered
				machines/acme/web/0a1: org acme is not registered
				peers/acme/alice: org acme is not registered`,
			check: acmeGone,
		}, {
			name:   "org back: everything under it is served again",
			events: `put orgs/acme {"network":"fdaa:0:18::/48"}`,
			want:   full,
		}, {
			name:   "org broken: the same as removed",
			events: `put orgs/acme {"network":"fdaa:0:18::/64"}`,
			want:   betaOnly,
			invalid: `
				orgs/acme: /48
				apps/acme/web: org acme
				machines/acme/web/0a1: org acme
				peers/acme/alice: org acme`,
			check: acmeGone,
		}, {
			name:   "org fixed",
			events: `put orgs/acme {"network":"fdaa:0:18::/48","note":"fixed"}`,
			want:   full,
		}, {
			name: "org removed with everything under it, in one transaction",
			events: `
				del orgs/acme
				del apps/acme/web
				del machines/acme/web/0a1
				del peers/acme/alice`,
			want:  betaOnly,
			check: acmeGone,
		}},
	})
}

func TestStoreOrgNetworkChange(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
			peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2","region":"ams"}`,
		want: `
			org acme fdaa:0:18::/48
			app acme/web flycast=fdaa:0:18:0:1::5
			machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
			peer acme/alice ams fdaa:0:18:a7b:9::2
			owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:9::2=peer/alice`,
		steps: []storeStep{{
			name:   "network moves: every address is now outside it",
			events: `put orgs/acme {"network":"fdaa:0:20::/48"}`,
			want:   `org acme fdaa:0:20::/48`,
			invalid: `
				apps/acme/web: flycast fdaa:0:18:0:1::5: outside the org's network fdaa:0:20::/48
				machines/acme/web/0a1: ip fdaa:0:18:a7b:1::2: outside the org's network fdaa:0:20::/48
				peers/acme/alice: outside the org's network`,
			check: func(t *testing.T, s *Snapshot) {
				if o := s.OrgOf(netip.MustParseAddr("fdaa:0:18::3")); o != nil {
					t.Errorf("old network still maps to %s", o.Name)
				}
				if o := s.OrgOf(netip.MustParseAddr("fdaa:0:20::3")); o == nil || o.Name != "acme" {
					t.Errorf("new network maps to %v", o)
				}
				if got := s.Org("acme").APIAddr(); got != netip.MustParseAddr("fdaa:0:20::3") {
					t.Errorf("APIAddr = %s", got)
				}
			},
		}, {
			name: "owners move with the addresses",
			events: `
				put apps/acme/web {"flycast":"fdaa:0:20:0:1::5"}
				put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:20:a7b:1::2","state":"started"}
				put peers/acme/alice {"ip":"fdaa:0:20:a7b:9::2","region":"ams"}`,
			want: `
				org acme fdaa:0:20::/48
				app acme/web flycast=fdaa:0:20:0:1::5
				machine acme/web/0a1 ams started fdaa:0:20:a7b:1::2
				peer acme/alice ams fdaa:0:20:a7b:9::2
				owners acme fdaa:0:20:a7b:1::2=web/0a1 fdaa:0:20:a7b:9::2=peer/alice`,
		}, {
			name:   "network moves back",
			events: `put orgs/acme {"network":"fdaa:0:18::/48"}`,
			want:   `org acme fdaa:0:18::/48`,
			invalid: `
				apps/acme/web: outside
				machines/acme/web/0a1: outside
				peers/acme/alice: outside`,
		}},
	})
}

func TestStoreNetworkClaims(t *testing.T) {
	const acme = `
		org acme fdaa:0:18::/48
		app acme/web
		machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
		owners acme fdaa:0:18:a7b:1::2=web/0a1`
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`,
		want: acme,
		steps: []storeStep{{
			name: "a younger org claims the same /48: refused",
			events: `
				put orgs/evil {"network":"fdaa:0:18::/48"}
				put machines/evil/x/0e1 {"region":"ams","ip":"fdaa:0:18:a7b:5::2","state":"started"}`,
			want: acme,
			invalid: `
				orgs/evil: network fdaa:0:18::/48 already belongs to org acme
				machines/evil/x/0e1: org evil is not registered or not served`,
			check: func(t *testing.T, s *Snapshot) {
				if o := s.OrgOf(netip.MustParseAddr("fdaa:0:18:a7b:5::2")); o == nil || o.Name != "acme" {
					t.Errorf("OrgOf = %v, want acme", o)
				}
			},
		}, {
			name:   "the older org goes: the other takes over",
			events: `del orgs/acme`,
			want: `
				org evil fdaa:0:18::/48
				app evil/x
				machine evil/x/0e1 ams started fdaa:0:18:a7b:5::2
				owners evil fdaa:0:18:a7b:5::2=x/0e1`,
			invalid: `machines/acme/web/0a1: org acme is not registered`,
		}, {
			name:   "the first org comes back, now younger: refused",
			events: `put orgs/acme {"network":"fdaa:0:18::/48"}`,
			want: `
				org evil fdaa:0:18::/48
				app evil/x
				machine evil/x/0e1 ams started fdaa:0:18:a7b:5::2
				owners evil fdaa:0:18:a7b:5::2=x/0e1`,
			invalid: `
				orgs/acme: already belongs to org evil
				machines/acme/web/0a1: org acme is not registered or not served`,
		}, {
			name:   "the holder moves to another network: both are served",
			events: `put orgs/evil {"network":"fdaa:0:21::/48"}`,
			want: acme + `
				org evil fdaa:0:21::/48`,
			invalid: `machines/evil/x/0e1: outside the org's network fdaa:0:21::/48`,
		}, {
			// evil's key is older than acme's (created again), but evil
			// named this network again only now: acme's claim is older.
			name:   "an org moves onto a held network: refused, whatever its key's age",
			events: `put orgs/evil {"network":"fdaa:0:18::/48"}`,
			want:   acme,
			invalid: `
				orgs/evil: network fdaa:0:18::/48 already belongs to org acme
				machines/evil/x/0e1: org evil is not registered or not served`,
		}, {
			name:   "a claimant's value turns invalid: its claim is dropped",
			events: `put orgs/evil {"network":"fdaa:0:18::/47"}`,
			want:   acme,
			invalid: `
				orgs/evil: must be an IPv6 /48
				machines/evil/x/0e1: org evil`,
		}, {
			name:   "a third org claims it",
			events: `put orgs/late {"network":"fdaa:0:18::/48"}`,
			want:   acme,
			invalid: `
				orgs/evil: must be an IPv6 /48
				orgs/late: already belongs to org acme
				machines/evil/x/0e1: org evil`,
		}, {
			name:   "a claim dropped and made again is new",
			events: `put orgs/evil {"network":"fdaa:0:18::/48"}`,
			want:   acme,
			invalid: `
				orgs/evil: already belongs to org acme
				orgs/late: already belongs to org acme
				machines/evil/x/0e1: org evil`,
		}, {
			name:   "the holder goes: the next oldest claim takes over, and the reasons follow it",
			events: `del orgs/acme`,
			want: `
				org late fdaa:0:18::/48`,
			invalid: `
				orgs/evil: already belongs to org late
				machines/evil/x/0e1: org evil
				machines/acme/web/0a1: org acme`,
		}},
	})
}

// TestStoreOlderClaimWins: a load reads keys sorted by name, but the org
// created first holds the network, whatever its name.
func TestStoreOlderClaimWins(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			orgs/zulu {"network":"fdaa:0:18::/48"}
			orgs/alfa {"network":"fdaa:0:18::/48"}`,
		want:    `org zulu fdaa:0:18::/48`,
		invalid: `orgs/alfa: already belongs to org zulu`,
		steps: []storeStep{{
			name:    "an update keeps the create revision",
			events:  `put orgs/zulu {"network":"fdaa:0:18::/48","note":"updated"}`,
			want:    `org zulu fdaa:0:18::/48`,
			invalid: `orgs/alfa: already belongs to org zulu`,
		}, {
			name:    "deleted and created again: now younger",
			events:  "del orgs/zulu\nput orgs/zulu {\"network\":\"fdaa:0:18::/48\"}",
			want:    `org alfa fdaa:0:18::/48`,
			invalid: `orgs/zulu: already belongs to org alfa`,
		}},
	})
}

func TestStoreInvalidValues(t *testing.T) {
	const served = `
		org acme fdaa:0:18::/48
		app acme/web
		machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
		machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
		owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`
	const only0a2 = `
		org acme fdaa:0:18::/48
		app acme/web
		machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
		owners acme fdaa:0:18:a7b:2::2=web/0a2`
	runStoreCase(t, storeCase{
		initial: `
			orgs/acme {"network":"fdaa:0:18::/48"}
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
			machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"started"}`,
		want: served,
		steps: []storeStep{{
			name:    "broken JSON replaces a valid value: the key is not served",
			events:  `put machines/acme/web/0a1 {"region":"ams","ip":`,
			want:    only0a2,
			invalid: `machines/acme/web/0a1: not valid JSON`,
		}, {
			name:    "unknown state",
			events:  `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"running"}`,
			want:    only0a2,
			invalid: `machines/acme/web/0a1: state "running": must be one of`,
		}, {
			name:    "address outside the org",
			events:  `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}`,
			want:    only0a2,
			invalid: `machines/acme/web/0a1: ip fdaa:0:19:a7b:1::2: outside the org's network fdaa:0:18::/48`,
		}, {
			name:   "a valid value fixes the key",
			events: `put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`,
			want:   served,
		}, {
			name: "keys of the wrong shape",
			events: `
				put machines/acme/web {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
				put machines/acme/web/0a1/x {}
				put widgets/acme {}
				put machines/acme/web/XYZ {"region":"ams","ip":"fdaa:0:18:a7b:3::2","state":"started"}
				put orgs/Acme {"network":"fdaa:0:22::/48"}`,
			want: served,
			invalid: `
				machines/acme/web: machines keys have 3 name segment(s)
				machines/acme/web/0a1/x: machines keys have 3
				widgets/acme: unknown kind "widgets"
				machines/acme/web/XYZ: machine id "XYZ": must be lowercase hex
				orgs/Acme: org "Acme"`,
		}, {
			name: "bad keys deleted",
			events: `
				del machines/acme/web
				del machines/acme/web/0a1/x
				del widgets/acme
				del machines/acme/web/XYZ
				del orgs/Acme`,
			want: served,
		}, {
			name: "an invalid value for a key that never held a valid one",
			events: `
				put machines/acme/web/0a3 {"region":"ams","ip":"fdaa:0:18:a7b:3::2","state":"started","metadata":{"Role":"x"}}
				put machines/acme/web/0a4 null`,
			want: served,
			invalid: `
				machines/acme/web/0a3: metadata key "Role"
				machines/acme/web/0a4: JSON object`,
		}, {
			name: "deleting an invalid key clears it",
			events: `
				del machines/acme/web/0a3
				del machines/acme/web/0a4`,
			want: served,
		}, {
			// An app value that breaks a rule is skipped like any other:
			// the app exists through its machines only, without the flycast.
			name:    "flycast outside the org",
			events:  `put apps/acme/web {"flycast":"fdaa:0:19:0:1::5"}`,
			want:    served,
			invalid: `apps/acme/web: flycast fdaa:0:19:0:1::5: outside the org's network fdaa:0:18::/48`,
		}, {
			name:   "flycast fixed",
			events: `put apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web flycast=fdaa:0:18:0:1::5
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`,
		}, {
			name:   "an invalid app value on an app without machines: no app",
			events: `put apps/acme/api {"flycast":"fdaa:0:19:0:1::6"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/web flycast=fdaa:0:18:0:1::5
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2`,
			invalid: `apps/acme/api: outside the org's network`,
			check: func(t *testing.T, s *Snapshot) {
				if s.Org("acme").App("api") != nil {
					t.Error("app api exists through an invalid value")
				}
			},
		}},
	})
}

func TestStoreRegionsAndGateways(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			regions/ams {"name":"Amsterdam","lat":52.31,"lon":4.77}
			gateways/ams {"endpoint":"203.0.113.7:51820","public_key":"` + wgKey + `"}`,
		want: `
			region ams 52.31 4.77
			gateway ams 203.0.113.7:51820`,
		steps: []storeStep{{
			name: "add and change",
			events: `
				put regions/xyz {"name":"Somewhere","lat":-33.9,"lon":151.2}
				put gateways/ams {"endpoint":"[2001:db8::7]:51820","public_key":"` + wgKey + `"}`,
			want: `
				region ams 52.31 4.77
				region xyz -33.9 151.2
				gateway ams [2001:db8::7]:51820`,
			check: func(t *testing.T, s *Snapshot) {
				if r := s.Region("xyz"); r == nil || r.Name != "Somewhere" || r.Code != "xyz" {
					t.Errorf("Region(xyz) = %+v", r)
				}
				if s.Region("iad") != nil || s.Gateway("iad") != nil {
					t.Error("unknown region or gateway found")
				}
			},
		}, {
			name: "invalid values are skipped",
			events: `
				put regions/ams {"lat":100,"lon":4.77}
				put gateways/iad {"endpoint":"gw.example.com:51820","public_key":"` + wgKey + `"}`,
			want: `
				region xyz -33.9 151.2
				gateway ams [2001:db8::7]:51820`,
			invalid: `
				regions/ams: lat 100: must be between -90 and 90
				gateways/iad: endpoint "gw.example.com:51820"`,
		}, {
			name: "deleted",
			events: `
				del regions/ams
				del gateways/iad
				del gateways/ams`,
			want: `region xyz -33.9 151.2`,
		}},
	})
}

// TestStoreMachineBeforeOrg: a machine or peer whose org is not there yet
// waits (counted as not served) and is served as soon as the org arrives.
func TestStoreMachineBeforeOrg(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: `
			machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
			orgs/beta {"network":"fdaa:0:19::/48"}`,
		want:    `org beta fdaa:0:19::/48`,
		invalid: `machines/acme/web/0a1: org acme is not registered`,
		steps: []storeStep{{
			name: "more arrive before the org",
			events: `
				put peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
				put apps/acme/api {}`,
			want: `org beta fdaa:0:19::/48`,
			invalid: `
				apps/acme/api: org acme
				machines/acme/web/0a1: org acme
				peers/acme/alice: org acme`,
		}, {
			name:   "the org arrives",
			events: `put orgs/acme {"network":"fdaa:0:18::/48"}`,
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				peer acme/alice - fdaa:0:18:a7b:9::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:9::2=peer/alice
				org beta fdaa:0:19::/48`,
		}, {
			name:   "an org that never comes leaves nothing behind once its keys go",
			events: "put machines/ghost/web/0f1 {\"region\":\"ams\",\"ip\":\"fdaa:0:30::2\",\"state\":\"started\"}\ndel machines/ghost/web/0f1",
			want: `
				org acme fdaa:0:18::/48
				app acme/api
				app acme/web
				machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
				peer acme/alice - fdaa:0:18:a7b:9::2
				owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:9::2=peer/alice
				org beta fdaa:0:19::/48`,
		}},
	})
}

// clock is a settable clock for WithClock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestSerialAndGen: an org's serial grows with every change of that org and
// only then; generations and pointers change only for what changed, which is
// what makes the work of an update proportional to it.
func TestSerialAndGen(t *testing.T) {
	clk := &clock{time.Unix(1_700_000_000, 0)}
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix, WithClock(clk.now))
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		orgs/beta {"network":"fdaa:0:19::/48"}
		apps/acme/web {}
		apps/acme/db {}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		machines/acme/db/0b1 {"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"started"}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
		machines/beta/api/0c1 {"region":"syd","ip":"fdaa:0:19:a7b:1::2","state":"started"}`))

	type view struct {
		acme, beta *Org
		web, db    *App
	}
	look := func() view {
		snap := s.Snapshot()
		a := snap.Org("acme")
		return view{a, snap.Org("beta"), a.App("web"), a.App("db")}
	}
	prev := look()
	if prev.acme.Serial != 1_700_000_000 || prev.beta.Serial != 1_700_000_000 {
		t.Fatalf("serials after load: %d %d, want the clock's seconds", prev.acme.Serial, prev.beta.Serial)
	}
	apply := func(events string) view {
		t.Helper()
		s.Apply(f.rev, f.step(t, events))
		return look()
	}
	// grew checks acme's serial and gen moved on and beta did not move at all.
	grew := func(what string, v view) {
		t.Helper()
		if v.acme.Serial <= prev.acme.Serial || v.acme.Gen == prev.acme.Gen {
			t.Errorf("%s: acme serial %d -> %d, gen %d -> %d: want both to change, serial up",
				what, prev.acme.Serial, v.acme.Serial, prev.acme.Gen, v.acme.Gen)
		}
		if v.beta != prev.beta {
			t.Errorf("%s: org beta was rebuilt (serial %d -> %d)", what, prev.beta.Serial, v.beta.Serial)
		}
		prev = v
	}

	v := apply(`put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped"}`)
	if v.acme.Serial != prev.acme.Serial+1 {
		t.Errorf("two changes in the same second: serial %d -> %d, want +1", prev.acme.Serial, v.acme.Serial)
	}
	if v.db != prev.db {
		t.Error("a change to app web rebuilt app db")
	}
	if v.web == prev.web || v.web.Gen == prev.web.Gen {
		t.Error("app web did not get a new generation")
	}
	grew("machine state", v)

	v = apply(`put peers/acme/alice {"ip":"fdaa:0:18:a7b:9::3"}`)
	if v.web != prev.web || v.db != prev.db {
		t.Error("a peer change rebuilt apps")
	}
	grew("peer change", v)

	// Many changes within one second push the serial ahead of the clock...
	for range 5 {
		v = apply(`put machines/acme/db/0b1 {"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"started"}`)
		if v.web != prev.web {
			t.Error("a change to app db rebuilt app web")
		}
		grew("repeated change", v)
	}
	// ...and a change that rebuilds the org from scratch must not fall back
	// to the clock.
	v = apply(`put orgs/acme {"network":"fdaa:0:20::/48"}`)
	grew("network change", v)
	v = apply(`put orgs/acme {"network":"fdaa:0:18::/48"}`)
	grew("network change back", v)

	// The clock jumps ahead: the serial follows it.
	clk.t = clk.t.Add(time.Hour)
	v = apply(`del machines/acme/db/0b1`)
	if v.acme.Serial != uint32(clk.t.Unix()) {
		t.Errorf("serial %d, want the clock's %d", v.acme.Serial, clk.t.Unix())
	}
	grew("delete", v)
	// The clock steps back: the serial still grows.
	clk.t = clk.t.Add(-2 * time.Hour)
	v = apply(`put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`)
	grew("clock stepped back", v)
	v = apply(`put machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":`)
	grew("invalid value", v)

	// Changes elsewhere leave acme as it is: its serial reveals nothing
	// about other orgs, not even one trying to take its network.
	for _, events := range []string{
		`put machines/beta/api/0c2 {"region":"syd","ip":"fdaa:0:19:a7b:2::2","state":"started"}`,
		`put orgs/evil {"network":"fdaa:0:18::/48"}`,
		`put machines/evil/x/0e1 {"region":"syd","ip":"fdaa:0:18:a7b:5::2","state":"started"}`,
		`del orgs/evil`,
		`put regions/xyz {"lat":1,"lon":2}`,
		`put gateways/ams {"endpoint":"203.0.113.7:51820","public_key":"` + wgKey + `"}`,
		`put machines/acme/web/0a1/bad {}`,
	} {
		before := s.Snapshot().Org("acme")
		s.Apply(f.rev, f.step(t, events))
		if after := s.Snapshot().Org("acme"); after != before {
			t.Errorf("%s: org acme was rebuilt (serial %d -> %d, gen %d -> %d)", events, before.Serial, after.Serial, before.Gen, after.Gen)
		}
	}

	// A full reload of the same contents keeps the serial: a reload says
	// nothing about the org.
	before := s.Snapshot().Org("acme").Serial
	s.Replace(f.rev, f.contents())
	if after := s.Snapshot().Org("acme").Serial; after != before {
		t.Errorf("reload of the same contents: serial %d -> %d, want it kept", before, after)
	}
	// A reload that changes the org keeps serials growing even when the
	// clock is behind.
	kvs := append(f.contents(), Event{Key: DefaultPrefix + "machines/acme/web/0f9",
		Value: []byte(`{"region":"ams","ip":"fdaa:0:18:a7b:9::9","state":"started"}`), CreateRevision: f.rev + 1, ModRevision: f.rev + 1})
	s.Replace(f.rev+1, kvs)
	if after := s.Snapshot().Org("acme").Serial; after <= before {
		t.Errorf("reload with a change: serial %d -> %d, want it to grow", before, after)
	}
}

// TestStoreGenerationsAcrossOrgs: with many orgs and apps, one machine
// change replaces exactly one *App and one *Org; everything else is shared.
func TestStoreGenerationsAcrossOrgs(t *testing.T) {
	var b strings.Builder
	for o := range 20 {
		b.WriteString("orgs/org" + itoa(o) + ` {"network":"fdaa:0:` + hex(o+1) + `::/48"}` + "\n")
		for a := range 10 {
			b.WriteString("machines/org" + itoa(o) + "/app" + itoa(a) + "/0" + hex(a) +
				` {"region":"ams","ip":"fdaa:0:` + hex(o+1) + `:1:` + hex(a) + `::2","state":"started"}` + "\n")
		}
	}
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, b.String()))
	old := s.Snapshot()
	s.Apply(f.rev, f.step(t, `put machines/org7/app3/03 {"region":"syd","ip":"fdaa:0:8:1:3::2","state":"started"}`))
	cur := s.Snapshot()
	changedOrgs, changedApps := 0, 0
	cur.RangeOrgs(func(o *Org) bool {
		was := old.Org(o.Name)
		if was != o {
			changedOrgs++
		}
		for _, name := range o.AppNames() {
			if was.App(name) != o.App(name) {
				changedApps++
				if o.App(name).Gen == was.App(name).Gen {
					t.Errorf("%s/%s changed but kept generation %d", o.Name, name, o.App(name).Gen)
				}
			}
		}
		return true
	})
	if changedOrgs != 1 || changedApps != 1 {
		t.Errorf("one machine change replaced %d orgs and %d apps, want 1 and 1", changedOrgs, changedApps)
	}
	if got := cur.Org("org7").App("app3").Machine("03").Region; got != "syd" {
		t.Errorf("machine region %q", got)
	}
	if old.Org("org7").App("app3").Machine("03").Region != "ams" {
		t.Error("the old snapshot changed")
	}
}

func TestStoreOwner(t *testing.T) {
	snap, _, err := SnapshotFromText(`
		orgs/acme {"network":"fdaa:0:18::/48"}
		orgs/beta {"network":"fdaa:0:19::/48"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"stopped"}
		machines/acme/web/0a3 {"region":"iad","ip":"fdaa:0:18:a7b:3::2","state":"destroyed"}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2","region":"syd"}
		peers/acme/bob {"ip":"fdaa:0:18:a7b:9::3"}`)
	if err != nil {
		t.Fatal(err)
	}
	acme := snap.Org("acme")
	for _, tc := range []struct {
		addr, owner, region string
	}{
		{"fdaa:0:18:a7b:1::2", "web/0a1", "ams"},
		{"fdaa:0:18:a7b:2::2", "web/0a2", "iad"},
		{"fdaa:0:18:a7b:3::2", "nobody", ""},
		{"fdaa:0:18:a7b:9::2", "peer/alice", "syd"},
		{"fdaa:0:18:a7b:9::3", "peer/bob", ""},
		{"fdaa:0:18:a7b:1::3", "nobody", ""},
		{"fdaa:0:18::3", "nobody", ""},
		{"fdaa:0:19:a7b:1::2", "nobody", ""},
	} {
		w, ok := acme.Owner(netip.MustParseAddr(tc.addr))
		if got := ownerName(w); got != tc.owner || ok != (tc.owner != "nobody") || w.Region() != tc.region {
			t.Errorf("Owner(%s) = %s (ok %v, region %q), want %s (region %q)", tc.addr, got, ok, w.Region(), tc.owner, tc.region)
		}
	}
	for addr, want := range map[string]string{
		"fdaa:0:18::3":       "acme",
		"fdaa:0:18:ffff::1":  "acme",
		"fdaa:0:19::3":       "beta",
		"fdaa:0:1a::3":       "",
		"fdaa:0:118::3":      "",
		"10.0.0.1":           "",
		"::ffff:10.0.0.1":    "",
		"fdaa:0:18::3%eth0":  "acme",
		"2001:db8:0:18::3":   "",
		"fdaa:0:0:18::3":     "",
		"fdaa:18::3":         "",
		"fdaa:0:18:a7b::ff":  "acme",
		"fdaa:0:19:a7b:1::2": "beta",
	} {
		o := snap.OrgOf(netip.MustParseAddr(addr))
		if got := orgName(o); got != want {
			t.Errorf("OrgOf(%s) = %q, want %q", addr, got, want)
		}
	}
	if snap.OrgOf(netip.Addr{}) != nil {
		t.Error("OrgOf(zero address) is not nil")
	}
}

func orgName(o *Org) string {
	if o == nil {
		return ""
	}
	return o.Name
}

// TestSnapshotImmutable: a snapshot taken before a series of changes reads
// the same afterwards, down to the objects it hands out.
func TestSnapshotImmutable(t *testing.T) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"role":"primary"}}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
		regions/ams {"lat":52,"lon":4}
		gateways/ams {"endpoint":"203.0.113.7:51820","public_key":"`+wgKey+`"}`))
	old := s.Snapshot()
	before := dump(t, old)
	org, app, m := old.Org("acme"), old.Org("acme").App("web"), old.Org("acme").App("web").Machine("0a1")
	machines, appNames, peerNames := app.Machines.Slice(), slices.Clone(org.AppNames()), slices.Clone(org.PeerNames())
	orgCopy, appGen, mCopy := *org, app.Gen, *m

	for _, events := range []string{
		`put machines/acme/web/0a1 {"region":"syd","ip":"fdaa:0:18:a7b:7::2","state":"stopped","metadata":{"role":"replica"}}`,
		`put machines/acme/web/0a2 {"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"started"}`,
		`put apps/acme/api {}`,
		`put peers/acme/bob {"ip":"fdaa:0:18:a7b:9::3"}`,
		`put regions/ams {"lat":1,"lon":1}`,
		`del gateways/ams`,
		`put orgs/acme {"network":"fdaa:0:20::/48"}`,
		"del orgs/acme\ndel apps/acme/web\ndel apps/acme/api\ndel machines/acme/web/0a1",
	} {
		s.Apply(f.rev, f.step(t, events))
		if got := dump(t, old); got != before {
			t.Fatalf("after %q the old snapshot reads:\n%s\nwas:\n%s", events, got, before)
		}
	}
	s.Replace(f.rev, f.contents())
	if got := dump(t, old); got != before {
		t.Fatalf("after a reload the old snapshot reads:\n%s\nwas:\n%s", got, before)
	}
	if old.Org("acme") != org || org.App("web") != app || app.Machine("0a1") != m {
		t.Error("the old snapshot hands out different objects")
	}
	if org.Name != orgCopy.Name || org.Network != orgCopy.Network || org.Serial != orgCopy.Serial || org.Gen != orgCopy.Gen ||
		app.Gen != appGen || !slices.Equal(app.Machines.Slice(), machines) || !slices.Equal(org.AppNames(), appNames) ||
		!slices.Equal(org.PeerNames(), peerNames) || m.Region != mCopy.Region || m.Metadata["role"] != "primary" {
		t.Error("objects of the old snapshot were modified")
	}
	if old.Region("ams").Lat != 52 || old.Gateway("ams") == nil {
		t.Error("regions or gateways of the old snapshot were modified")
	}
}

func TestParseText(t *testing.T) {
	evs, err := ParseText("/p/", `
		# a comment
		orgs/acme {"network":"fdaa:0:18::/48"}

		apps/acme/web   {"flycast":"fdaa:0:18:0:1::5"}  `)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Key: "/p/orgs/acme", Value: []byte(`{"network":"fdaa:0:18::/48"}`), CreateRevision: 1, ModRevision: 1},
		{Key: "/p/apps/acme/web", Value: []byte(`{"flycast":"fdaa:0:18:0:1::5"}`), CreateRevision: 2, ModRevision: 2},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i := range want {
		if evs[i].Key != want[i].Key || string(evs[i].Value) != string(want[i].Value) ||
			evs[i].CreateRevision != want[i].CreateRevision || evs[i].ModRevision != want[i].ModRevision || evs[i].Delete {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
		}
	}
	_, err = ParseText("/p/", "orgs/acme {}\n\norgs/beta")
	checkErr(t, err, `line 3|"orgs/beta"`)
}

func TestSnapshotFromText(t *testing.T) {
	snap, s, err := SnapshotFromText(`
		orgs/acme {"network":"fdaa:0:18::/48"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}`)
	if err != nil {
		t.Fatal(err)
	}
	if snap != s.Snapshot() || snap.Revision != 2 || snap.Stale {
		t.Errorf("snapshot %p at %d (stale %v), store has %p", snap, snap.Revision, snap.Stale, s.Snapshot())
	}
	if s.InvalidCount() != 1 {
		t.Errorf("invalid: %s", invalidText(s))
	}
	if _, _, err := SnapshotFromText("orgs/acme"); err == nil {
		t.Error("SnapshotFromText accepted a line without a value")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
func hex(i int) string  { return strconv.FormatInt(int64(i), 16) }

// TestStoreRandomMatchesReload applies random batches of events over a small
// key space full of conflicts (orgs sharing networks, addresses in the wrong
// network, invalid values, machines before their orgs) and checks after
// every batch that the incrementally updated store equals a full load of the
// same contents, and that earlier snapshots have not changed.
func TestStoreRandomMatchesReload(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	nets := []string{"fdaa:0:1::/48", "fdaa:0:2::/48", "fdaa:0:3::/48"}
	orgs := []string{"a", "b", "c", "d"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	// addr puts a unique host part (one per key) into one of the networks,
	// so no two keys ever share an address.
	hosts := map[string]int{}
	addr := func(key string) string {
		h, ok := hosts[key]
		if !ok {
			h = len(hosts) + 1
			hosts[key] = h
		}
		return strings.TrimSuffix(pick(nets), "::/48") + ":1:" + strconv.FormatInt(int64(h), 16) + "::2"
	}
	value := func(key string) string {
		if rng.IntN(10) == 0 {
			return pick([]string{`{"broken"`, `null`, `{"network":"fdaa:0:1::/64"}`, `{"ip":"10.0.0.1"}`, `[]`})
		}
		switch {
		case strings.HasPrefix(key, "orgs/"):
			return `{"network":"` + pick(nets) + `"}`
		case strings.HasPrefix(key, "apps/"):
			if rng.IntN(2) == 0 {
				return `{}`
			}
			return `{"flycast":"` + addr(key) + `"}`
		case strings.HasPrefix(key, "machines/"):
			return `{"region":"` + pick([]string{"ams", "iad", "syd"}) + `","ip":"` + addr(key) + `","state":"` +
				pick(States) + `","skip_registration":` + strconv.FormatBool(rng.IntN(8) == 0) + `}`
		case strings.HasPrefix(key, "peers/"):
			return `{"ip":"` + addr(key) + `"}`
		case strings.HasPrefix(key, "regions/"):
			return `{"lat":` + strconv.Itoa(rng.IntN(200)-100) + `,"lon":1}`
		}
		return `{"endpoint":"192.0.2.1:51820","public_key":"` + wgKey + `"}`
	}
	randomKey := func() string {
		o := pick(orgs)
		switch rng.IntN(10) {
		case 0:
			return "orgs/" + o
		case 1:
			return "apps/" + o + "/" + pick([]string{"web", "db"})
		case 2:
			return "peers/" + o + "/" + pick([]string{"p1", "p2"})
		case 3:
			return pick([]string{"regions/ams", "gateways/ams", "bogus/key"})
		}
		return "machines/" + o + "/" + pick([]string{"web", "db"}) + "/" + pick([]string{"1", "2", "3"})
	}

	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(0, nil)
	type seen struct {
		snap *Snapshot
		dump string
	}
	var kept []seen
	for batch := range 1500 {
		var lines []string
		exists := func(k string) bool { _, ok := f.kvs[f.prefix+k]; return ok }
		deleted := map[string]bool{}
		for range 1 + rng.IntN(5) {
			k := randomKey()
			if exists(k) && !deleted[k] && rng.IntN(3) == 0 {
				lines = append(lines, "del "+k)
				deleted[k] = true
			} else {
				lines = append(lines, "put "+k+" "+value(k))
				delete(deleted, k)
			}
		}
		s.Apply(f.rev, f.step(t, strings.Join(lines, "\n")))
		got := dump(t, s.Snapshot())
		r := f.reloaded()
		if want := dump(t, r.Snapshot()); got != want {
			t.Fatalf("batch %d (%q): incremental:\n%s\nfull load:\n%s", batch, lines, got, want)
		}
		if a, b := invalidText(s), invalidText(r); a != b {
			t.Fatalf("batch %d (%q): invalid keys, incremental:\n%s\nfull load:\n%s", batch, lines, a, b)
		}
		// A full load replacing this snapshot agrees with it even when
		// etcd's history is gone (it keeps the snapshot's claims), and the
		// reconcile, which dates claims the same way, finds no drift.
		r2 := NewStore(DefaultPrefix)
		r2.snap.Store(s.Snapshot())
		l := r2.BeginLoad()
		for _, ev := range f.contents() {
			l.Add(ev)
		}
		l.Commit(f.rev)
		if want := dump(t, r2.Snapshot()); got != want {
			t.Fatalf("batch %d (%q): incremental:\n%s\nfull load replacing it, no history:\n%s", batch, lines, got, want)
		}
		if a, b := invalidText(s), invalidText(r2); a != b {
			t.Fatalf("batch %d (%q): invalid keys, incremental:\n%s\nfull load replacing it, no history:\n%s", batch, lines, a, b)
		}
		// A full load replacing an older snapshot (a server that missed
		// events: a compacted watch) agrees too, with etcd's history.
		if len(kept) > 0 {
			r3 := NewStore(DefaultPrefix)
			r3.snap.Store(kept[len(kept)-1].snap)
			f.reload(r3)
			if want := dump(t, r3.Snapshot()); got != want {
				t.Fatalf("batch %d (%q): incremental:\n%s\nfull load replacing an older snapshot:\n%s", batch, lines, got, want)
			}
			if a, b := invalidText(s), invalidText(r3); a != b {
				t.Fatalf("batch %d (%q): invalid keys, incremental:\n%s\nfull load replacing an older snapshot:\n%s", batch, lines, a, b)
			}
		}
		if diff := diffEvents(DefaultPrefix, s.Snapshot(), f.contents(), nil); len(diff) != 0 {
			t.Fatalf("batch %d (%q): reconcile without history finds drift %v", batch, lines, diff)
		}
		if diff := diffEvents(DefaultPrefix, s.Snapshot(), f.contents(), f.getAt); len(diff) != 0 {
			t.Fatalf("batch %d (%q): reconcile finds drift %v", batch, lines, diff)
		}
		if batch%100 == 0 {
			kept = append(kept, seen{s.Snapshot(), got})
		}
	}
	for i, k := range kept {
		if d := dump(t, k.snap); d != k.dump {
			t.Errorf("kept snapshot %d changed", i)
		}
	}
	// Once every key is gone, so is everything the state remembered.
	var dels []string
	for _, k := range sortedKeys(f.kvs) {
		dels = append(dels, "del "+strings.TrimPrefix(k, f.prefix))
	}
	s.Apply(f.rev, f.step(t, strings.Join(dels, "\n")))
	if got := dump(t, s.Snapshot()); got != "" {
		t.Errorf("empty registry dumps as:\n%s", got)
	}
	if st := s.st; len(st.orgs) != 0 || len(st.claims) != 0 || len(st.invalid) != 0 || len(st.regions) != 0 || len(st.gateways) != 0 || len(st.dirty) != 0 {
		t.Errorf("state still holds %d orgs, %d claims, %d invalid, %d regions, %d gateways, %d dirty",
			len(st.orgs), len(st.claims), len(st.invalid), len(st.regions), len(st.gateways), len(st.dirty))
	}
}
