package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// Item is one value for PutAll: a *OrgValue, *AppValue, *Machine, *Peer,
// *Gateway or *Region with its names filled in.
type Item any

// maxTxnOps is etcd's default limit of operations in one transaction
// (--max-txn-ops).
const maxTxnOps = 128

// PutAll validates every item, all of them before anything is written, and
// writes them in transactions of up to 128 puts, several at a time. Orgs in
// the batch count for the network checks of the machines and peers in it.
// Orgs are written first, so a watching server does not see machines wait
// for their org. It returns how many items were written; on error some
// transactions may already have been committed (each one is atomic).
func (w *Writer) PutAll(ctx context.Context, items []Item, opts ...PutOption) (int, error) {
	networks, err := w.networks(ctx)
	if err != nil {
		return 0, err
	}
	existing := maps.Clone(networks)
	held := map[netip.Prefix]string{}
	for name, n := range networks {
		held[n] = name
	}
	for i, it := range items {
		o, ok := it.(*OrgValue)
		if !ok {
			continue
		}
		if err := o.Validate(); err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
		if other, ok := held[o.Network]; ok && other != o.Name {
			return 0, fmt.Errorf("item %d: org %s: network %s already belongs to org %s", i+1, o.Name, o.Network, other)
		}
		held[o.Network] = o.Name
		networks[o.Name] = o.Network
	}

	var orgPuts, otherPuts []clientv3.Op
	putOpts := leaseOpts(opts)
	now := w.now().UTC()
	// A key given twice is written once, with its last value: etcd refuses
	// a transaction that puts a key twice, and two transactions running at
	// once would leave either value.
	type slot struct {
		org bool
		i   int
	}
	at := map[string]slot{}
	for i, it := range items {
		k, err := validateItem(it, networks, now)
		if err != nil {
			return 0, fmt.Errorf("item %d (%s): %w", i+1, k, err)
		}
		data, err := json.Marshal(it)
		if err != nil {
			return 0, fmt.Errorf("item %d (%s): %w", i+1, k, err)
		}
		op := clientv3.OpPut(w.key(k), string(data), putOpts...)
		switch sl, ok := at[w.key(k)]; {
		case ok && sl.org:
			orgPuts[sl.i] = op
		case ok:
			otherPuts[sl.i] = op
		case k.Kind == KindOrg:
			at[w.key(k)] = slot{true, len(orgPuts)}
			orgPuts = append(orgPuts, op)
		default:
			at[w.key(k)] = slot{false, len(otherPuts)}
			otherPuts = append(otherPuts, op)
		}
	}
	// An org that changes network must not leave addresses outside it,
	// except those this batch rewrites (checked above).
	written := make(map[string]bool, len(at))
	for key := range at {
		written[key] = true
	}
	for i, it := range items {
		o, ok := it.(*OrgValue)
		if !ok || !existing[o.Name].IsValid() || existing[o.Name] == networks[o.Name] {
			continue
		}
		if err := w.checkMembers(ctx, o.Name, networks[o.Name], 0, written); err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
	}
	if err := w.commitBatches(ctx, orgPuts); err != nil {
		return 0, err
	}
	if err := w.commitBatches(ctx, otherPuts); err != nil {
		return len(orgPuts), err
	}
	return len(orgPuts) + len(otherPuts), nil
}

// networks reads every org's network from etcd.
func (w *Writer) networks(ctx context.Context) (map[string]netip.Prefix, error) {
	existing, err := w.list(ctx, "orgs/")
	if err != nil {
		return nil, err
	}
	out := map[string]netip.Prefix{}
	for _, ev := range existing {
		k, err := ParseKey(w.prefix, ev.Key)
		if err != nil {
			continue
		}
		if v, err := Decode(k, ev.Value); err == nil {
			out[k.Name] = v.(*OrgValue).Network
		}
	}
	return out, nil
}

// validateItem checks one item, stamps it and returns its key.
func validateItem(it Item, networks map[string]netip.Prefix, now time.Time) (Key, error) {
	inOrg := func(org, field string, a netip.Addr) error {
		n, ok := networks[org]
		if !ok {
			return fmt.Errorf("org %q: not registered (put the org in the same file or create it first)", org)
		}
		return CheckAddrIn(field, a, n)
	}
	stamp := func(t *time.Time) {
		if t.IsZero() {
			*t = now
		}
	}
	switch v := it.(type) {
	case *OrgValue:
		stamp(&v.UpdatedAt)
		return OrgKey(v.Name), nil // validated by the caller
	case *AppValue:
		stamp(&v.UpdatedAt)
		err := v.Validate()
		if err == nil && v.Flycast.IsValid() {
			err = inOrg(v.Org, "flycast", v.Flycast)
		}
		return AppKey(v.Org, v.Name), err
	case *Machine:
		stamp(&v.UpdatedAt)
		if v.ProcessGroup == "" {
			v.ProcessGroup = DefaultProcessGroup
		}
		err := v.Validate()
		if err == nil {
			err = inOrg(v.Org, "ip", v.IP)
		}
		if err == nil {
			err = CheckMachineAddr(v.IP, networks[v.Org])
		}
		return MachineKey(v.Org, v.App, v.ID), err
	case *Peer:
		stamp(&v.UpdatedAt)
		err := v.Validate()
		if err == nil {
			err = inOrg(v.Org, "ip", v.IP)
		}
		return PeerKey(v.Org, v.Name), err
	case *Gateway:
		stamp(&v.UpdatedAt)
		return GatewayKey(v.Region), v.Validate()
	case *Region:
		stamp(&v.UpdatedAt)
		return RegionKey(v.Code), v.Validate()
	}
	return Key{}, fmt.Errorf("unsupported item type %T", it)
}

// commitBatches writes ops in transactions of at most maxTxnOps, four at a time.
func (w *Writer) commitBatches(ctx context.Context, ops []clientv3.Op) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for start := 0; start < len(ops); start += maxTxnOps {
		batch := ops[start:min(start+maxTxnOps, len(ops))]
		g.Go(func() error {
			if _, err := w.cli.Txn(gctx).Then(batch...).Commit(); err != nil {
				return fmt.Errorf("write batch starting at %s: %w", batch[0].KeyBytes(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

func leaseOpts(opts []PutOption) []clientv3.OpOption {
	var po putOptions
	for _, o := range opts {
		o(&po)
	}
	if po.lease != 0 {
		return []clientv3.OpOption{clientv3.WithLease(po.lease)}
	}
	return nil
}
