package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/registry"
)

const demoOrg = "demo"

// demoRegistry is the sample org --demo seeds: apps spread over several
// regions, a stopped machine, process groups, metadata, a flycast address
// a WireGuard peer, and health checks and an http service on web
// (_http._tcp.web.internal SRV), so every name shape has something to show.
const demoRegistry = `
orgs/demo {"network":"fdaa:0:d::/48"}
apps/demo/web {"flycast":"fdaa:0:d:0:1::2"}
apps/demo/api {}
apps/demo/db {}
machines/demo/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:d:a7b:1::2","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/demo/web/e784079b449483 {"region":"ams","ip":"fdaa:0:d:a7b:1::3","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/demo/web/91851edb6e4e83 {"region":"iad","ip":"fdaa:0:d:a7b:2::2","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/demo/web/2865d4e1a47308 {"region":"syd","ip":"fdaa:0:d:a7b:3::2","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/demo/web/0e28654b6d6378 {"region":"sin","ip":"fdaa:0:d:a7b:4::2","state":"stopped"}
machines/demo/api/5683d9a7c0e368 {"region":"fra","ip":"fdaa:0:d:a7b:5::2","state":"started","process_group":"app"}
machines/demo/api/784e42ec6e6d08 {"region":"ord","ip":"fdaa:0:d:a7b:6::2","state":"started","process_group":"worker"}
machines/demo/db/148e2d5a3e7189 {"region":"ams","ip":"fdaa:0:d:a7b:7::2","state":"started","metadata":{"role":"primary"}}
machines/demo/db/9080e6e0b7d218 {"region":"lhr","ip":"fdaa:0:d:a7b:8::2","state":"started","metadata":{"role":"replica"}}
peers/demo/laptop {"ip":"fdaa:0:d:a7b:9::2","region":"ams"}
`

// seedDemo writes the demo org unless it already exists, so a restart keeps
// whatever was changed since.
func seedDemo(ctx context.Context, cli *clientv3.Client, prefix string) error {
	w := registry.NewWriter(cli, prefix)
	if _, err := w.Get(ctx, registry.OrgKey(demoOrg)); err == nil {
		return nil
	}
	evs, err := registry.ParseText(prefix, demoRegistry)
	if err != nil {
		return err
	}
	items := make([]registry.Item, 0, len(evs))
	for _, ev := range evs {
		k, err := registry.ParseKey(prefix, ev.Key)
		if err != nil {
			return err
		}
		v, err := registry.DecodeItem(k, ev.Value)
		if err != nil {
			return fmt.Errorf("demo registry %s: %w", k, err)
		}
		items = append(items, v)
	}
	if _, err := w.PutAll(ctx, items); err != nil {
		return fmt.Errorf("seed demo org: %w", err)
	}
	return nil
}

// printDemo prints dig and meshctl commands that work against this server
// as started (etcd is where meshctl must write).
func printDemo(out io.Writer, srv *dnsserver.Server, etcd []string) {
	host, port := "127.0.0.1", "1053"
	if addrs := srv.Addrs(); len(addrs) > 0 {
		if ua, ok := addrs[0].(*net.UDPAddr); ok {
			host, port = ua.AddrPort().Addr().Unmap().String(), strconv.Itoa(ua.Port)
		}
	}
	at := fmt.Sprintf("dig @%s -p %s", host, port)
	ctl := "go run ./cmd/meshctl"
	if len(etcd) != 1 || strings.TrimPrefix(etcd[0], "http://") != "127.0.0.1:2379" {
		ctl += " --etcd-endpoints " + strings.Join(etcd, ",")
	}
	fmt.Fprintf(out, `
meshdns is serving the demo org. Try:

  %[1]s aaaa web.internal                  # every started machine of web, nearest first
  %[1]s aaaa iad.web.internal              # web's machines in iad
  %[1]s aaaa 3d8d9e0b2ee489.vm.web.internal
  %[1]s aaaa top2.nearest.of.web.internal
  %[1]s aaaa worker.process.api.internal
  %[1]s aaaa primary.role.kv._metadata.db.internal
  %[1]s aaaa laptop._peer.internal
  %[1]s aaaa web.flycast
  %[1]s -x fdaa:0:d:a7b:1::2              # reverse: 3d8d9e0b2ee489.vm.web.internal.
  %[1]s txt _apps.internal
  %[1]s txt vms.web.internal
  %[1]s txt all.vms.web.internal
  %[1]s txt regions.web.internal
  %[1]s txt _instances.internal
  %[1]s txt _whoami.internal
  %[1]s +tcp aaaa web.internal

Change the registry with meshctl (it talks to the embedded etcd):

  %[2]s machine state 3d8d9e0b2ee489 stopped --org demo --app web
  %[2]s machine list --org demo

`, at, ctl)
}
