package registry

import (
	"net/netip"
	"testing"
)

// TestAddrIndex: HasAddrUnder and FlycastApp see exactly the org's
// served addresses — deployed machines, peers, flycast addresses and
// <network>::3 — and each published Org version its own.
func TestAddrIndex(t *testing.T) {
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		orgs/other {"network":"fdaa:0:19::/48"}
		apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
		machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		machines/acme/web/0a2 {"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"destroyed"}
		machines/acme/web/0a3 {"region":"ams","ip":"fdaa:0:18:a7b:3::2","state":"stopped","skip_registration":true}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
		machines/other/web/0b1 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}`))
	acme := s.Snapshot().Org("acme")
	under := func(o *Org, p string) bool {
		pfx := netip.MustParsePrefix(p)
		return o.HasAddrUnder(pfx.Addr().As16(), pfx.Bits()/4)
	}
	for _, tc := range []struct {
		prefix string
		want   bool
	}{
		{"fdaa::/16", true},
		{"fdaa::/20", true},
		{"fdaa:0:18::/48", true},
		{"fdaa:0:19::/48", false}, // other's
		{"fdaa:0:18:a7b::/64", true},
		{"fdaa:0:18:a7b:1::/80", true},
		{"fdaa:0:18:a7b:2::/80", false}, // destroyed only
		{"fdaa:0:18:a7b:3::/80", false}, // skip_registration only
		{"fdaa:0:18:a7b:9::2/128", true},
		{"fdaa:0:18:a7b:9::3/128", false},
		{"fdaa:0:18::3/128", true},
		{"fdaa:0:18::/124", true},
		{"fdaa:0:18:0:1::5/128", true},
		{"fdaa:0:18:0:1::/116", true},
		{"fdaa:0:18:0:1::10/124", false},
		{"fdab::/16", false},
	} {
		if got := under(acme, tc.prefix); got != tc.want {
			t.Errorf("acme HasAddrUnder(%s) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if app := acme.FlycastApp(netip.MustParseAddr("fdaa:0:18:0:1::5")); app == nil || app.Name != "web" {
		t.Errorf("FlycastApp: %v", app)
	}
	if app := acme.FlycastApp(netip.MustParseAddr("fdaa:0:18:a7b:1::2")); app != nil {
		t.Errorf("FlycastApp of a machine's address: %v", app)
	}

	// A change publishes a new Org with its own index; the old one keeps its.
	s.Apply(f.rev, f.step(t, "del machines/acme/web/0a1\nput apps/acme/web {}"))
	next := s.Snapshot().Org("acme")
	if under(next, "fdaa:0:18:a7b:1::/80") || next.FlycastApp(netip.MustParseAddr("fdaa:0:18:0:1::5")) != nil {
		t.Error("the new org version still has the removed machine or flycast address")
	}
	if !under(acme, "fdaa:0:18:a7b:1::/80") {
		t.Error("the old org version lost its machine")
	}
}
