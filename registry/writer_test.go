package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

var (
	acmeNet = netip.MustParsePrefix("fdaa:0:18::/48")
	betaNet = netip.MustParsePrefix("fdaa:0:19::/48")
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func machine(org, app, id, region, ip, state string) Machine {
	return Machine{Org: org, App: app, ID: id, Region: region, IP: addr(ip), State: state}
}

// TestWriterToStore: what the Writer puts reaches a Store through a running
// Syncer, and every kind of change shows up in the snapshot.
func TestWriterToStore(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	s := NewStore(DefaultPrefix)
	startSyncer(t, SyncerConfig{Client: cli, Store: s})
	ctx := ctxT(t)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}))
	must(w.PutOrg(ctx, OrgValue{Name: "beta", Network: betaNet}))
	must(w.PutApp(ctx, AppValue{Org: "acme", Name: "web", Flycast: addr("fdaa:0:18:0:1::5")}))
	must(w.PutMachine(ctx, machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted)))
	m := machine("acme", "web", "0a2", "iad", "fdaa:0:18:a7b:2::2", StateStarted)
	m.ProcessGroup, m.Metadata = "worker", map[string]string{"role": "primary"}
	must(w.PutMachine(ctx, m))
	must(w.PutMachine(ctx, machine("beta", "api", "0c1", "syd", "fdaa:0:19:a7b:1::2", StateStarted)))
	must(w.PutPeer(ctx, Peer{Org: "acme", Name: "alice", IP: addr("fdaa:0:18:a7b:9::2"), Region: "ams", PublicKey: wgKey}))
	must(w.PutGateway(ctx, Gateway{Region: "ams", Endpoint: "203.0.113.7:51820", PublicKey: wgKey}))
	must(w.PutRegion(ctx, Region{Code: "xyz", Name: "Test", Lat: 10, Lon: 20}))
	const acmeAll = `
		org acme fdaa:0:18::/48
		app acme/web flycast=fdaa:0:18:0:1::5
		machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
		machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2 group=worker meta=role:primary
		peer acme/alice ams fdaa:0:18:a7b:9::2
		owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:2::2=web/0a2 fdaa:0:18:a7b:9::2=peer/alice`
	const beta = `
		org beta fdaa:0:19::/48
		app beta/api
		machine beta/api/0c1 syd started fdaa:0:19:a7b:1::2
		owners beta fdaa:0:19:a7b:1::2=api/0c1`
	const global = `
		region xyz 10 20
		gateway ams 203.0.113.7:51820`
	waitDump(t, s, acmeAll+beta+global)

	// Writers stamp UpdatedAt; readers get it back.
	if m := s.Snapshot().Org("acme").App("web").Machine("0a1"); m.UpdatedAt.IsZero() || time.Since(m.UpdatedAt) > time.Minute {
		t.Errorf("UpdatedAt = %v", m.UpdatedAt)
	}
	got, err := w.Get(ctx, MachineKey("acme", "web", "0a2"))
	if gm, _ := got.(*Machine); err != nil || gm.ProcessGroup != "worker" || gm.Metadata["role"] != "primary" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	list, err := w.List(ctx, "machines/acme/")
	if err != nil || len(list) != 2 || list[0].Key != DefaultPrefix+"machines/acme/web/0a1" {
		t.Errorf("List = %d entries (%v)", len(list), err)
	}

	// SetMachineCheck sets one check, keeping the others and the rest.
	must(w.SetMachineCheck(ctx, "acme", "web", "0a2", "http", CheckPassing))
	must(w.SetMachineCheck(ctx, "acme", "web", "0a2", "pg", CheckCritical))
	must(w.SetMachineCheck(ctx, "acme", "web", "0a2", "http", CheckWarning))
	got, err = w.Get(ctx, MachineKey("acme", "web", "0a2"))
	if gm, _ := got.(*Machine); err != nil || gm.ProcessGroup != "worker" || gm.Metadata["role"] != "primary" ||
		len(gm.Checks) != 2 || gm.Checks["http"] != CheckWarning || gm.Checks["pg"] != CheckCritical {
		t.Errorf("after SetMachineCheck: %+v, %v", got, err)
	}
	if err := w.SetMachineCheck(ctx, "acme", "web", "0a2", "http", "down"); err == nil || !strings.Contains(err.Error(), `status "down"`) {
		t.Errorf("SetMachineCheck with status down: %v", err)
	}
	must(w.SetMachineState(ctx, "acme", "web", "0a1", StateStopped))
	waitDump(t, s, strings.Replace(acmeAll, "0a1 ams started", "0a1 ams stopped", 1)+beta+global)
	must(w.Delete(ctx, MachineKey("acme", "web", "0a1")))
	must(w.Delete(ctx, GatewayKey("ams")))
	waitDump(t, s, `
		org acme fdaa:0:18::/48
		app acme/web flycast=fdaa:0:18:0:1::5
		machine acme/web/0a2 iad started fdaa:0:18:a7b:2::2 group=worker meta=role:primary
		peer acme/alice ams fdaa:0:18:a7b:9::2
		owners acme fdaa:0:18:a7b:2::2=web/0a2 fdaa:0:18:a7b:9::2=peer/alice`+beta+`
		region xyz 10 20`)

	// DeleteOrg takes everything of the org, and nothing of an org whose
	// name merely starts the same.
	must(w.PutOrg(ctx, OrgValue{Name: "acme2", Network: netip.MustParsePrefix("fdaa:0:20::/48")}))
	must(w.PutMachine(ctx, machine("acme2", "web", "0d1", "ams", "fdaa:0:20::2", StateStarted)))
	must(w.DeleteOrg(ctx, "acme"))
	waitDump(t, s, `
		org acme2 fdaa:0:20::/48
		app acme2/web
		machine acme2/web/0d1 ams started fdaa:0:20::2
		owners acme2 fdaa:0:20::2=web/0d1`+beta+`
		region xyz 10 20`)
	if n := s.InvalidCount(); n != 0 {
		t.Errorf("after DeleteOrg %d keys are skipped:\n%s", n, invalidText(s))
	}
	if left, _ := w.List(ctx, "machines/acme/"); len(left) != 0 {
		t.Errorf("DeleteOrg left %d machines", len(left))
	}
	waitMatchesEtcd(t, cli, s)
}

// TestWriterRejects: invalid writes fail with an error naming the field, the
// value and the rule, and write nothing at all.
func TestWriterRejects(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	if err := w.PutMachine(ctx, machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted)); err != nil {
		t.Fatal(err)
	}
	// A machine value that some other writer broke.
	if _, err := cli.Put(ctx, DefaultPrefix+"machines/acme/web/0bad", `{"state":"started"}`); err != nil {
		t.Fatal(err)
	}
	good := machine("acme", "web", "0a9", "ams", "fdaa:0:18:a7b:9::2", StateStarted)
	with := func(f func(m *Machine)) Machine { m := good; f(&m); return m }

	for _, tc := range []struct {
		name string
		do   func() error
		err  string // '|'-separated parts
	}{
		{"org name", func() error { return w.PutOrg(ctx, OrgValue{Name: "Acme", Network: betaNet}) }, `org "Acme"|lowercase`},
		{"org /64", func() error {
			return w.PutOrg(ctx, OrgValue{Name: "beta", Network: netip.MustParsePrefix("fdaa:0:19::/64")})
		}, `network "fdaa:0:19::/64"|IPv6 /48`},
		{"org outside fdaa::/16", func() error {
			return w.PutOrg(ctx, OrgValue{Name: "beta", Network: netip.MustParsePrefix("fd00:0:19::/48")})
		}, "fd00:0:19::/48|inside fdaa::/16"},
		{"org host bits", func() error {
			return w.PutOrg(ctx, OrgValue{Name: "beta", Network: netip.MustParsePrefix("fdaa:0:19::1/48")})
		}, "host bits"},
		{"org no network", func() error { return w.PutOrg(ctx, OrgValue{Name: "beta"}) }, "network|missing"},
		{"org network taken", func() error { return w.PutOrg(ctx, OrgValue{Name: "beta", Network: acmeNet}) },
			"network fdaa:0:18::/48|already belongs to org acme"},
		{"org network change strands a machine", func() error { return w.PutOrg(ctx, OrgValue{Name: "acme", Network: betaNet}) },
			"machines/acme/web/0a1|fdaa:0:18:a7b:1::2|outside|fdaa:0:19::/48"},
		{"app in no org", func() error { return w.PutApp(ctx, AppValue{Org: "nobody", Name: "web"}) }, `org "nobody"|not registered`},
		{"app name", func() error { return w.PutApp(ctx, AppValue{Org: "acme", Name: "web_1"}) }, `app "web_1"`},
		{"app flycast outside org", func() error {
			return w.PutApp(ctx, AppValue{Org: "acme", Name: "web", Flycast: addr("fdaa:0:19::5")})
		}, "flycast fdaa:0:19::5|outside the org's network fdaa:0:18::/48"},
		{"machine in no org", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.Org = "nobody" })) }, `org "nobody"|not registered`},
		{"machine id", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.ID = "0A9" })) }, `machine id "0A9"|lowercase hex`},
		{"machine state", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.State = "running" })) }, `state "running"|must be one of`},
		{"machine region", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.Region = "top" })) }, `region "top"|reserved`},
		{"machine no region", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.Region = "" })) }, `region ""`},
		{"machine ip outside org", func() error {
			return w.PutMachine(ctx, with(func(m *Machine) { m.IP = addr("fdaa:0:19::2") }))
		}, "ip fdaa:0:19::2|outside the org's network fdaa:0:18::/48"},
		{"machine ipv4", func() error { return w.PutMachine(ctx, with(func(m *Machine) { m.IP = addr("10.0.0.1") })) }, `ip "10.0.0.1"|IPv6`},
		{"machine ip in the peer subnet", func() error {
			return w.PutMachine(ctx, with(func(m *Machine) { m.IP = addr("fdaa:0:18:fffe::9") }))
		}, "ip fdaa:0:18:fffe::9|peer subnet fdaa:0:18:fffe::/64|reserved for WireGuard peers"},
		{"machine ip in the peer subnet, bulk", func() error {
			_, err := w.PutAll(ctx, []Item{ptr(with(func(m *Machine) { m.IP = addr("fdaa:0:18:fffe::9") }))})
			return err
		}, "ip fdaa:0:18:fffe::9|peer subnet"},
		{"machine process group", func() error {
			return w.PutMachine(ctx, with(func(m *Machine) { m.ProcessGroup = "Web" }))
		}, `process_group "Web"`},
		{"machine metadata", func() error {
			return w.PutMachine(ctx, with(func(m *Machine) { m.Metadata = map[string]string{"role": "a b"} }))
		}, `metadata value of role "a b"`},
		{"peer outside org", func() error {
			return w.PutPeer(ctx, Peer{Org: "acme", Name: "alice", IP: addr("fdaa:0:19::9")})
		}, "ip fdaa:0:19::9|outside"},
		{"peer key", func() error {
			return w.PutPeer(ctx, Peer{Org: "acme", Name: "alice", IP: addr("fdaa:0:18::9"), PublicKey: "short"})
		}, `public_key "short"|WireGuard key`},
		{"gateway endpoint", func() error {
			return w.PutGateway(ctx, Gateway{Region: "ams", Endpoint: "gw:51820", PublicKey: wgKey})
		}, `endpoint "gw:51820"|address:port`},
		{"region lat", func() error { return w.PutRegion(ctx, Region{Code: "xyz", Lat: 91}) }, "lat 91|between -90 and 90"},
		{"region code", func() error { return w.PutRegion(ctx, Region{Code: "vms"}) }, `region "vms"|reserved`},
		{"state of a missing machine", func() error { return w.SetMachineState(ctx, "acme", "web", "0ff", StateStopped) }, "machines/acme/web/0ff|not found"},
		{"unknown state", func() error { return w.SetMachineState(ctx, "acme", "web", "0a1", "paused") }, `state "paused"`},
		{"state of an invalid value", func() error { return w.SetMachineState(ctx, "acme", "web", "0bad", StateStopped) },
			"machines/acme/web/0bad|invalid value|put it again in full"},
		{"delete a missing key", func() error { return w.Delete(ctx, MachineKey("acme", "web", "0ff")) }, "machines/acme/web/0ff|not found"},
		{"delete an org with a bad name", func() error { return w.DeleteOrg(ctx, "ACME") }, `org "ACME"`},
		{"lease below a second", func() error { _, err := w.Grant(ctx, 500*time.Millisecond); return err }, "lease ttl 500ms|at least 1s"},
		{"put all with one bad item", func() error {
			_, err := w.PutAll(ctx, []Item{&OrgValue{Name: "beta", Network: betaNet}, &good, &Machine{Org: "acme", App: "web", ID: "0b2", Region: "ams", IP: addr("fdaa:0:19::2"), State: "started"}})
			return err
		}, "item 3|machines/acme/web/0b2|fdaa:0:19::2|outside"},
		{"put all with a taken network", func() error {
			_, err := w.PutAll(ctx, []Item{&OrgValue{Name: "beta", Network: acmeNet}})
			return err
		}, "item 1|org beta|already belongs to org acme"},
		{"put all with two orgs on one network", func() error {
			_, err := w.PutAll(ctx, []Item{&OrgValue{Name: "beta", Network: betaNet}, &OrgValue{Name: "gamma", Network: betaNet}})
			return err
		}, "item 2|org gamma|already belongs to org beta"},
		{"put all with a machine of no org", func() error {
			_, err := w.PutAll(ctx, []Item{&Machine{Org: "nobody", App: "web", ID: "0b2", Region: "ams", IP: addr("fdaa:0:19::2"), State: "started"}})
			return err
		}, `org "nobody"|not registered`},
		// Anything but the value types does not compile as an Item; a nil
		// one is refused before anything is read or written.
		{"put all with a nil item", func() error { _, err := w.PutAll(ctx, []Item{&good, nil}); return err }, "item 2: nil"},
		{"put all with a nil machine", func() error { _, err := w.PutAll(ctx, []Item{(*Machine)(nil)}); return err }, "item 1: nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, cli)
			checkErr(t, tc.do(), tc.err)
			if after := etcdRevision(t, cli); after != before {
				t.Errorf("a rejected write changed etcd (revision %d -> %d)", before, after)
			}
		})
	}
	if !errors.Is(w.Delete(ctx, MachineKey("acme", "web", "0ff")), ErrNotFound) {
		t.Error("Delete of a missing key is not ErrNotFound")
	}
	if !errors.Is(w.SetMachineState(ctx, "acme", "web", "0ff", StateStopped), ErrNotFound) {
		t.Error("SetMachineState of a missing machine is not ErrNotFound")
	}
	if _, err := w.Get(ctx, OrgKey("nobody")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing key: %v", err)
	}
}

// TestWriterOrgNetworkChange: an org may change its network only when
// nothing of it would be left outside.
func TestWriterOrgNetworkChange(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	newNet := netip.MustParsePrefix("fdaa:0:20::/48")
	for _, err := range []error{
		w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}),
		w.PutApp(ctx, AppValue{Org: "acme", Name: "api"}), // no address: moves freely
		w.PutApp(ctx, AppValue{Org: "acme", Name: "web", Flycast: addr("fdaa:0:18:0:1::5")}),
		w.PutMachine(ctx, machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted)),
		w.PutPeer(ctx, Peer{Org: "acme", Name: "alice", IP: addr("fdaa:0:18:a7b:9::2")}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Same network, new value: fine.
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	// Each member in turn blocks the move, named in the error.
	for _, blocker := range []Key{AppKey("acme", "web"), MachineKey("acme", "web", "0a1"), PeerKey("acme", "alice")} {
		err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: newNet})
		checkErr(t, err, blocker.Path()+"|outside|fdaa:0:20::/48")
		if err := w.Delete(ctx, blocker); err != nil {
			t.Fatal(err)
		}
	}
	// PutAll checks the same, except for members the batch itself moves.
	if err := w.PutMachine(ctx, machine("acme", "db", "0b1", "ams", "fdaa:0:18:a7b:2::2", StateStarted)); err != nil {
		t.Fatal(err)
	}
	_, err := w.PutAll(ctx, []Item{&OrgValue{Name: "acme", Network: newNet}})
	checkErr(t, err, "item 1|machines/acme/db/0b1|outside")
	moved := machine("acme", "db", "0b1", "ams", "fdaa:0:20:a7b:2::2", StateStarted)
	if _, err := w.PutAll(ctx, []Item{&moved, &OrgValue{Name: "acme", Network: newNet}}); err != nil {
		t.Fatalf("PutAll moving the org with its machine: %v", err)
	}
	if err := w.PutMachine(ctx, machine("acme", "db", "0b1", "ams", "fdaa:0:20:a7b:2::2", StateStarted)); err != nil {
		t.Fatal(err)
	}
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: newNet}); err != nil {
		t.Fatalf("a value for the same network: %v", err)
	}
	// The old network is free for another org now.
	if err := w.PutOrg(ctx, OrgValue{Name: "beta", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
}

// TestWriterSetMachineState: only the state (and the stamp) change; the
// lease and fields this writer does not know stay.
func TestWriterSetMachineState(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	lease, err := w.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m := machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted)
	m.Metadata = map[string]string{"role": "primary"}
	if err := w.PutMachine(ctx, m, WithLease(lease)); err != nil {
		t.Fatal(err)
	}
	key := DefaultPrefix + "machines/acme/web/0a1"
	// A newer writer added a field this one does not know.
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	raw["checks"] = map[string]any{"http": "passing"}
	data, _ := json.Marshal(raw)
	if _, err := cli.Put(ctx, key, string(data), clientv3.WithIgnoreLease()); err != nil {
		t.Fatal(err)
	}

	if err := w.SetMachineState(ctx, "acme", "web", "0a1", StateStopped); err != nil {
		t.Fatal(err)
	}
	resp, err = cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	kv := resp.Kvs[0]
	if clientv3.LeaseID(kv.Lease) != lease {
		t.Errorf("lease %x after SetMachineState, want %x", kv.Lease, lease)
	}
	v, err := Decode(MachineKey("acme", "web", "0a1"), kv.Value)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*Machine)
	if got.State != StateStopped || got.Region != "ams" || got.IP != m.IP || got.Metadata["role"] != "primary" || got.ProcessGroup != "app" {
		t.Errorf("after SetMachineState: %+v", got)
	}
	if !strings.Contains(string(kv.Value), `"checks":{"http":"passing"}`) {
		t.Errorf("SetMachineState dropped a field it does not know: %s", kv.Value)
	}
	// The lease still works: revoking it removes the machine.
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Get(ctx, MachineKey("acme", "web", "0a1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("machine still there after its lease was revoked: %v", err)
	}
}

// TestWriterPutAll writes a few thousand items and follows them into a Store.
func TestWriterPutAll(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	s := NewStore(DefaultPrefix)
	startSyncer(t, SyncerConfig{Client: cli, Store: s})
	ctx := ctxT(t)

	// 4 orgs with 25 apps of 30 machines each = 3,000 machines, plus a peer
	// per app, two regions and a gateway.
	var items []Item
	for o := range 4 {
		net := fmt.Sprintf("fdaa:0:%x", 0x100+o)
		items = append(items, &OrgValue{Name: fmt.Sprintf("org%d", o), Network: netip.MustParsePrefix(net + "::/48")})
		for a := range 25 {
			items = append(items, &Peer{Org: fmt.Sprintf("org%d", o), Name: fmt.Sprintf("peer%d", a), IP: addr(fmt.Sprintf("%s:ffff:%x::2", net, a))})
			for m := range 30 {
				items = append(items, &Machine{Org: fmt.Sprintf("org%d", o), App: fmt.Sprintf("app%d", a), ID: fmt.Sprintf("%x", 0x1000+a*100+m),
					Region: []string{"ams", "iad", "syd"}[m%3], IP: addr(fmt.Sprintf("%s:%x:%x::2", net, a, m)), State: StateStarted})
			}
		}
	}
	items = append(items, &Region{Code: "xyz", Lat: 1, Lon: 2}, &Region{Code: "ams", Lat: 52, Lon: 4},
		&Gateway{Region: "ams", Endpoint: "203.0.113.7:51820", PublicKey: wgKey})
	// Orgs go first even when listed last: move one org to the end.
	items = append(items[1:], items[0])
	// The same key twice: the later value wins.
	items = append(items, &Machine{Org: "org1", App: "app0", ID: "1000", Region: "syd", IP: addr("fdaa:0:101:0:0::2"), State: StateStopped})

	start := time.Now()
	n, err := w.PutAll(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PutAll of %d items took %v", len(items), time.Since(start))
	if n != len(items)-1 {
		t.Errorf("PutAll wrote %d items, want %d (one key given twice)", n, len(items)-1)
	}
	waitMatchesEtcd(t, cli, s)
	snap := s.Snapshot()
	total := machineCount(snap)
	snap.RangeOrgs(func(o *Org) bool {
		if len(o.PeerNames()) != 25 {
			t.Errorf("org %s has %d peers", o.Name, len(o.PeerNames()))
		}
		return true
	})
	if total != 3000 || snap.OrgCount() != 4 || s.InvalidCount() != 0 {
		t.Errorf("store has %d machines in %d orgs, %d skipped", total, snap.OrgCount(), s.InvalidCount())
	}
	if m := snap.Org("org1").App("app0").Machine("1000"); m == nil || m.State != StateStopped || m.Region != "syd" {
		t.Errorf("a key given twice: %+v, want the later value", m)
	}
	if snap.Region("xyz") == nil || snap.Gateway("ams") == nil {
		t.Error("regions or gateway missing")
	}
}

// TestWriterGuards: a write checked against an org's network fails if the
// org changes between the check and the write.
func TestWriterGuards(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	_, rev, err := w.org(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// The org changes after the check...
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: netip.MustParsePrefix("fdaa:0:20::/48")}); err != nil {
		t.Fatal(err)
	}
	// ...so a write validated against the old network is refused.
	m := machine("acme", "web", "0a1", "ams", "fdaa:0:18::2", StateStarted)
	err = w.put(ctx, MachineKey("acme", "web", "0a1"), m, w.orgGuard("acme", rev), nil)
	checkErr(t, err, "machines/acme/web/0a1|org acme changed while writing|try again")
	if _, err := w.Get(ctx, MachineKey("acme", "web", "0a1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("guarded write went through: %v", err)
	}

	// An org write checked against the other orgs fails if one changed.
	rev = etcdRevision(t, cli)
	if err := w.PutOrg(ctx, OrgValue{Name: "beta", Network: betaNet}); err != nil {
		t.Fatal(err)
	}
	err = w.put(ctx, OrgKey("gamma"), OrgValue{Name: "gamma", Network: betaNet}, []clientv3.Cmp{w.unchangedSince("orgs/", rev)}, nil)
	checkErr(t, err, "orgs/gamma|orgs changed while writing|try again")
}

func ptr[T any](v T) *T { return &v }
