//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/meshdns/meshdns/registry"
)

// Loaders: "putall" is registry.Writer.PutAll, what meshctl load uses (every
// item validated, 128-op transactions, four in flight); "txn" skips the
// writer's validation and keeps more transactions in flight, for registries
// too big to load through PutAll in reasonable time.
const (
	loaderPutAll = "putall"
	loaderTxn    = "txn"
)

// loadStats says how a registry was written.
type loadStats struct {
	Loader string
	Keys   int
	Took   time.Duration
	DBSize int64 // etcd's backend size afterwards, bytes
}

// loadRegistry writes r under prefix.
func loadRegistry(ctx context.Context, cli *clientv3.Client, prefix string, r *reg, loader string) (loadStats, error) {
	start := time.Now()
	items := r.items()
	st := loadStats{Loader: loader, Keys: len(items)}
	var err error
	switch loader {
	case loaderPutAll:
		_, err = registry.NewWriter(cli, prefix).PutAll(ctx, items)
	case loaderTxn:
		err = putTxns(ctx, cli, prefix, items)
	default:
		err = fmt.Errorf("--loader %q: want %s or %s", loader, loaderPutAll, loaderTxn)
	}
	if err != nil {
		return st, fmt.Errorf("load %d keys with %s: %w", len(items), loader, err)
	}
	st.Took = time.Since(start)
	if status, err := cli.Status(ctx, cli.Endpoints()[0]); err == nil {
		st.DBSize = status.DbSize
	}
	return st, nil
}

// items turns r into registry values, orgs first.
func (r *reg) items() []registry.Item {
	out := make([]registry.Item, 0, len(r.Orgs)+r.machineCount()*11/10)
	for _, o := range r.Orgs {
		out = append(out, &registry.OrgValue{Name: o.Name, Network: o.Net})
	}
	for _, o := range r.Orgs {
		for _, a := range o.Apps {
			out = append(out, &registry.AppValue{Org: o.Name, Name: a.Name})
			for _, m := range a.Machines {
				out = append(out, m.value())
			}
		}
	}
	return out
}

func (m *machine) value() *registry.Machine {
	state := registry.StateStopped
	if m.Started {
		state = registry.StateStarted
	}
	return &registry.Machine{
		Org: m.App.Org.Name, App: m.App.Name, ID: m.ID,
		Region: m.Region, IP: m.IP, State: state, ProcessGroup: registry.DefaultProcessGroup,
	}
}

// txnOps is etcd's default --max-txn-ops.
const txnOps = 128

// putTxns writes items in 128-op transactions, 16 in flight: enough to keep
// an etcd on two cores busy, where PutAll's four leave it waiting on
// round trips.
func putTxns(ctx context.Context, cli *clientv3.Client, prefix string, items []registry.Item) error {
	now := time.Now().UTC()
	ops := make([]clientv3.Op, 0, len(items))
	for _, it := range items {
		var k registry.Key
		switch v := it.(type) {
		case *registry.OrgValue:
			k, v.UpdatedAt = registry.OrgKey(v.Name), now
		case *registry.AppValue:
			k, v.UpdatedAt = registry.AppKey(v.Org, v.Name), now
		case *registry.Machine:
			k, v.UpdatedAt = registry.MachineKey(v.Org, v.App, v.ID), now
		default:
			return fmt.Errorf("unexpected item %T", it)
		}
		data, err := json.Marshal(it)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(prefix+k.Path(), string(data)))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for start := 0; start < len(ops); start += txnOps {
		batch := ops[start:min(start+txnOps, len(ops))]
		g.Go(func() error {
			_, err := cli.Txn(gctx).Then(batch...).Commit()
			return err
		})
	}
	return g.Wait()
}
