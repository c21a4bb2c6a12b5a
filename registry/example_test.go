package registry_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/registry"
)

// A snapshot built from registry text, as tests and the demo do: the org of
// an address, an app's machines, who holds an address, and what was skipped.
func ExampleSnapshotFromText() {
	snap, store, err := registry.SnapshotFromText(`
		orgs/acme {"network":"fdaa:0:18::/48"}
		apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
		machines/acme/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
		machines/acme/web/e784079b449483 {"region":"iad","ip":"fdaa:0:18:a7b:2::2","state":"stopped"}
		machines/acme/web/0bad {"region":"ams","ip":"fdaa:0:19:a7b:3::2","state":"started"}
		peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2","region":"syd"}`)
	if err != nil {
		log.Fatal(err)
	}
	org := snap.OrgOf(netip.MustParseAddr("fdaa:0:18:a7b:9::2"))
	fmt.Println("org:", org.Name, org.Network, "dns:", org.APIAddr())
	app := org.App("web")
	fmt.Println("app:", app.Name, "flycast:", app.Flycast)
	for _, m := range app.Machines.All() {
		fmt.Println("  machine:", m.ID, m.Region, m.State, "started:", m.Started())
	}
	if w, ok := org.Owner(netip.MustParseAddr("fdaa:0:18:a7b:9::2")); ok {
		fmt.Println("fdaa:0:18:a7b:9::2 is peer", w.Peer.Name, "in", w.Region())
	}
	skipped := store.Invalid()
	keys := make([]string, 0, len(skipped))
	for k := range skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println("skipped:", k, "-", skipped[k])
	}
	// Output:
	// org: acme fdaa:0:18::/48 dns: fdaa:0:18::3
	// app: web flycast: fdaa:0:18:0:1::5
	//   machine: 3d8d9e0b2ee489 ams started started: true
	//   machine: e784079b449483 iad stopped started: false
	// fdaa:0:18:a7b:9::2 is peer alice in syd
	// skipped: /meshdns/v1/machines/acme/web/0bad - ip fdaa:0:19:a7b:3::2: outside the org's network fdaa:0:18::/48
}

// Feeding a Store by hand: a load, then one change. Readers holding the
// first snapshot keep seeing it unchanged.
func ExampleStore_Apply() {
	store := registry.NewStore(registry.DefaultPrefix)
	load, _ := registry.ParseText(registry.DefaultPrefix, `
		orgs/acme {"network":"fdaa:0:18::/48"}
		machines/acme/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`)
	store.Replace(2, load)
	before := store.Snapshot()

	store.Apply(3, []registry.Event{{
		Key:         registry.DefaultPrefix + "machines/acme/web/3d8d9e0b2ee489",
		Value:       []byte(`{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"destroyed"}`),
		ModRevision: 3,
	}})
	after := store.Snapshot()

	fmt.Println("before:", before.Org("acme").App("web").Machines.Len(), "machine(s) at revision", before.Revision)
	fmt.Println("after:", after.Org("acme").App("web"), "at revision", after.Revision)
	// Output:
	// before: 1 machine(s) at revision 2
	// after: <nil> at revision 3
}

// The Writer validates every value, including the rules that involve other
// keys, before anything reaches etcd. (Needs a running etcd, so it is only
// compiled.)
func ExampleWriter() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := registry.NewWriter(cli, registry.DefaultPrefix)

	if err := w.PutOrg(ctx, registry.OrgValue{Name: "acme", Network: netip.MustParsePrefix("fdaa:0:18::/48")}); err != nil {
		log.Fatal(err)
	}
	// A host keeps the lease alive while it runs its machines; if it
	// crashes, the lease expires and its machines leave DNS.
	lease, err := w.Grant(ctx, 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	m := registry.Machine{Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "ams",
		IP: netip.MustParseAddr("fdaa:0:18:a7b:1::2"), State: registry.StateStarted}
	if err := w.PutMachine(ctx, m, registry.WithLease(lease)); err != nil {
		log.Fatal(err)
	}
	if err := w.SetMachineState(ctx, "acme", "web", "3d8d9e0b2ee489", registry.StateStopped); err != nil {
		log.Fatal(err)
	}
	// An address outside the org's network is refused, and nothing is written.
	m.IP = netip.MustParseAddr("fdaa:0:19::2")
	fmt.Println(w.PutMachine(ctx, m))
}

// A server keeps a Store current with a Syncer and answers from its
// snapshots. (Needs a running etcd, so it is only compiled.)
func ExampleSyncer() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	store := registry.NewStore(registry.DefaultPrefix)
	syncer := registry.NewSyncer(registry.SyncerConfig{Client: cli, Prefix: registry.DefaultPrefix, Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go syncer.Run(ctx)

	for !syncer.Status().Ready {
		time.Sleep(100 * time.Millisecond)
	}
	if org := store.Snapshot().OrgOf(netip.MustParseAddr("fdaa:0:18::3")); org != nil {
		fmt.Println(org.Name, org.AppNames())
	}
}
