package registry

import (
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// An org's network cannot be taken over by a write order: the org that
// named a network first keeps it, even when an org whose key is older is
// written onto it later (by any program writing etcd, not only meshctl).

const takeoverInitial = `
	orgs/alfa {"network":"fdaa:0:1::/48"}
	orgs/bravo {"network":"fdaa:0:2::/48"}
	machines/alfa/web/0a1 {"region":"ams","ip":"fdaa:0:1:a7b:1::2","state":"started"}
	machines/bravo/web/0b1 {"region":"ams","ip":"fdaa:0:2:a7b:1::2","state":"started"}`

const bravoServed = `
	org alfa fdaa:0:1::/48
	app alfa/web
	machine alfa/web/0a1 ams started fdaa:0:1:a7b:1::2
	owners alfa fdaa:0:1:a7b:1::2=web/0a1
	org bravo fdaa:0:2::/48
	app bravo/web
	machine bravo/web/0b1 ams started fdaa:0:2:a7b:1::2
	owners bravo fdaa:0:2:a7b:1::2=web/0b1`

const bravoHolds = `
	org bravo fdaa:0:2::/48
	app bravo/web
	machine bravo/web/0b1 ams started fdaa:0:2:a7b:1::2
	owners bravo fdaa:0:2:a7b:1::2=web/0b1`

const alfaRefused = `
	orgs/alfa: network fdaa:0:2::/48 already belongs to org bravo
	machines/alfa/web/0a1: org alfa is not registered or not served`

// TestStoreTakeover: the watch path, and (through runStoreCase) a full load
// of the same contents after every step.
func TestStoreTakeover(t *testing.T) {
	runStoreCase(t, storeCase{
		initial: takeoverInitial,
		want:    bravoServed,
		steps: []storeStep{{
			name:    "the older org is written onto the younger one's network: refused",
			events:  `put orgs/alfa {"network":"fdaa:0:2::/48"}`,
			want:    bravoHolds,
			invalid: alfaRefused,
			check: func(t *testing.T, s *Snapshot) {
				if o := s.OrgOf(netip.MustParseAddr("fdaa:0:2:a7b:1::2")); o == nil || o.Name != "bravo" {
					t.Errorf("bravo's asker maps to %v, want bravo", o)
				}
			},
		}, {
			name:    "the holder's key is rewritten with its network: it keeps its claim",
			events:  `put orgs/bravo {"network":"fdaa:0:2::/48","updated_at":"2025-03-01T12:00:00Z"}`,
			want:    bravoHolds,
			invalid: alfaRefused,
		}, {
			name:    "the squatter is written again: still refused",
			events:  `put orgs/alfa {"network":"fdaa:0:2::/48","updated_at":"2025-03-01T12:00:00Z"}`,
			want:    bravoHolds,
			invalid: alfaRefused,
		}, {
			name:   "the squatter's machines are written into the network: not served",
			events: `put machines/alfa/web/0a2 {"region":"ams","ip":"fdaa:0:2:a7b:9::2","state":"started"}`,
			want:   bravoHolds,
			invalid: alfaRefused + `
				machines/alfa/web/0a2: org alfa is not registered or not served`,
		}, {
			name:   "the holder goes: the other claim takes over",
			events: `del orgs/bravo`,
			want: `
				org alfa fdaa:0:2::/48
				app alfa/web
				machine alfa/web/0a2 ams started fdaa:0:2:a7b:9::2
				owners alfa fdaa:0:2:a7b:9::2=web/0a2`,
			invalid: `
				machines/alfa/web/0a1: outside the org's network fdaa:0:2::/48
				machines/bravo/web/0b1: org bravo is not registered or not served`,
		}, {
			name:   "the first holder comes back: now it is the younger claim",
			events: `put orgs/bravo {"network":"fdaa:0:2::/48"}`,
			want: `
				org alfa fdaa:0:2::/48
				app alfa/web
				machine alfa/web/0a2 ams started fdaa:0:2:a7b:9::2
				owners alfa fdaa:0:2:a7b:9::2=web/0a2`,
			invalid: `
				orgs/bravo: network fdaa:0:2::/48 already belongs to org alfa
				machines/alfa/web/0a1: outside the org's network fdaa:0:2::/48
				machines/bravo/web/0b1: org bravo is not registered or not served`,
		}},
	})
}

// TestSyncerTakeover: against a real etcd, a raw write (past the Writer)
// moving an older org onto a younger org's network is refused by a running
// syncer (watch) and by a syncer starting afresh (full load), also after
// the holder's key was rewritten; the squatter's value is reported invalid
// and logged; the reconcile finds no drift in that state.
func TestSyncerTakeover(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	ctx := ctxT(t)
	put := func(key, value string) {
		t.Helper()
		if _, err := cli.Put(ctx, DefaultPrefix+key, value); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(takeoverInitial), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		put(key, value)
	}
	core, logs := observer.New(zap.InfoLevel)
	s := NewStore(DefaultPrefix, WithLogger(zap.New(core)))
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s})
	caughtUp := func(s *Store) {
		t.Helper()
		rev := etcdRevision(t, cli)
		waitFor(t, "the store to reach etcd's revision", func() bool { return s.Revision() >= rev })
	}
	check := func(what string, s *Store, sy *runningSyncer) {
		t.Helper()
		caughtUp(s)
		if got := normText(dump(t, s.Snapshot())); got != normText(bravoHolds) {
			t.Fatalf("%s: snapshot:\n%s\nwant:\n%s", what, got, normText(bravoHolds))
		}
		checkInvalid(t, what, s, alfaRefused)
		waitFor(t, "the syncer to be ready", func() bool { return sy.Status().Ready })
		diff, err := sy.Reconcile(ctx)
		if err != nil || len(diff) != 0 {
			t.Fatalf("%s: reconcile found %v, %v; want no drift", what, diff, err)
		}
	}

	// The watch.
	put("orgs/alfa", `{"network":"fdaa:0:2::/48"}`)
	check("after the raw write", s, sy)
	if n := logs.FilterMessage("registry value skipped").FilterField(zap.String("key", DefaultPrefix+"orgs/alfa")).Len(); n != 1 {
		t.Errorf("the refused org was logged %d times, want once", n)
	}
	put("orgs/bravo", `{"network":"fdaa:0:2::/48","updated_at":"2025-03-01T12:00:00Z"}`)
	check("after the holder's key was rewritten", s, sy)

	// A full load, by a server starting without any state.
	s2 := NewStore(DefaultPrefix)
	sy2 := startSyncer(t, SyncerConfig{Client: cli, Store: s2})
	check("full load", s2, sy2)
	waitMatchesEtcd(t, cli, s)
}
