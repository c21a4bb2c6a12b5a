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
// *Gateway or *Region with its name fields filled in. No other type is an
// Item, so a batch of anything else does not compile.
type Item interface {
	// Key is the key the value is stored under, from its name fields.
	Key() Key
	// Validate checks the value on its own; PutAll adds the checks that
	// need other keys (an address inside its org's network, a network
	// named by one org only).
	Validate() error
	item()
}

// The registry's value types are the Items.
var (
	_ Item = (*OrgValue)(nil)
	_ Item = (*AppValue)(nil)
	_ Item = (*Machine)(nil)
	_ Item = (*Peer)(nil)
	_ Item = (*Gateway)(nil)
	_ Item = (*Region)(nil)
)

func (o *OrgValue) Key() Key { return OrgKey(o.Name) }
func (a *AppValue) Key() Key { return AppKey(a.Org, a.Name) }
func (m *Machine) Key() Key  { return MachineKey(m.Org, m.App, m.ID) }
func (p *Peer) Key() Key     { return PeerKey(p.Org, p.Name) }
func (g *Gateway) Key() Key  { return GatewayKey(g.Region) }
func (r *Region) Key() Key   { return RegionKey(r.Code) }

func (*OrgValue) item() {}
func (*AppValue) item() {}
func (*Machine) item()  {}
func (*Peer) item()     {}
func (*Gateway) item()  {}
func (*Region) item()   {}

// DecodeItem is Decode for a batch: the value stored under k, checked,
// as an Item for PutAll.
func DecodeItem(k Key, data []byte) (Item, error) {
	v, err := Decode(k, data)
	if err != nil {
		return nil, err
	}
	return v.(Item), nil // Decode returns only the Item types
}

// isNil reports whether it holds no value: a nil interface or a nil
// pointer of one of the Item types.
func isNil(it Item) bool {
	switch v := it.(type) {
	case nil:
		return true
	case *OrgValue:
		return v == nil
	case *AppValue:
		return v == nil
	case *Machine:
		return v == nil
	case *Peer:
		return v == nil
	case *Gateway:
		return v == nil
	case *Region:
		return v == nil
	}
	return false
}

// maxTxnOps is etcd's default limit of operations in one transaction
// (--max-txn-ops).
const maxTxnOps = 128

// PutAll validates every item, all of them before anything is written, and
// writes them in transactions of up to 128 puts. Orgs in the batch count for
// the network checks of the machines and peers in it. Orgs are written
// first, so a watching server does not see machines wait for their org. It
// returns how many items were written; on error some transactions may
// already have been committed (each one is atomic).
//
// The checks that involve other keys are guarded like the single writes:
// the org transactions fail if any org changed since the orgs were read
// (so no org can come to name a network the batch gives another), and so do
// those of an org moving to a new network if a member of it changed since
// its members were checked; every other transaction fails if the org of one
// of its items changed since it was read or written by the batch.
func (w *Writer) PutAll(ctx context.Context, items []Item, opts ...PutOption) (int, error) {
	for i, it := range items {
		if isNil(it) {
			return 0, fmt.Errorf("item %d: nil; want a value with its name fields set", i+1)
		}
	}
	resp, err := w.cli.Get(ctx, w.prefix+Dir(KindOrg), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list orgs/: %w", err)
	}
	readRev := resp.Header.Revision
	networks := map[string]netip.Prefix{}
	// orgRev is the mod revision each org key must still have when an item
	// of the org is written (0: the key must not exist).
	orgRev := map[string]int64{}
	for _, kv := range resp.Kvs {
		k, err := ParseKey(w.prefix, string(kv.Key))
		if err != nil || k.Kind != KindOrg {
			continue
		}
		orgRev[k.Name] = kv.ModRevision
		if v, err := Decode(k, kv.Value); err == nil {
			networks[k.Name] = v.(*OrgValue).Network
		}
	}
	existing := maps.Clone(networks)
	// named lists the orgs naming each network, in etcd and in the batch.
	named := map[netip.Prefix]map[string]bool{}
	for name, n := range networks {
		if named[n] == nil {
			named[n] = map[string]bool{}
		}
		named[n][name] = true
	}
	for i, it := range items {
		o, ok := it.(*OrgValue)
		if !ok {
			continue
		}
		if err := o.Validate(); err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
		// Naming a network another org names is refused, unless the org
		// named it already (rewriting it keeps the org's claim, see
		// dateClaim).
		if existing[o.Name] != o.Network {
			for other := range named[o.Network] {
				if other != o.Name {
					return 0, fmt.Errorf("item %d: org %s: network %s already belongs to org %s", i+1, o.Name, o.Network, other)
				}
			}
		}
		if old, ok := networks[o.Name]; ok && old != o.Network && existing[o.Name] != old {
			delete(named[old], o.Name) // given twice in the batch: the last wins
		}
		if named[o.Network] == nil {
			named[o.Network] = map[string]bool{}
		}
		named[o.Network][o.Name] = true
		networks[o.Name] = o.Network
	}

	var orgPuts, otherPuts []clientv3.Op
	var orgOf []string // the org of each of otherPuts ("" for none)
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
			orgOf = append(orgOf, k.Org)
		}
	}
	// An org that changes network must not leave addresses outside it,
	// except those this batch rewrites (checked above); its members are
	// read at readRev and guarded from then on.
	written := make(map[string]bool, len(at))
	for key := range at {
		written[key] = true
	}
	moving := map[string]bool{}
	for i, it := range items {
		o, ok := it.(*OrgValue)
		if !ok || !existing[o.Name].IsValid() || existing[o.Name] == networks[o.Name] || moving[o.Name] {
			continue
		}
		if err := w.checkMembers(ctx, o.Name, networks[o.Name], readRev, written); err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
		moving[o.Name] = true
	}
	if w.beforeCommit != nil {
		w.beforeCommit()
	}
	progress := newProgress(opts, len(orgPuts)+len(otherPuts))
	if err := w.commitOrgs(ctx, orgPuts, readRev, moving, orgRev, progress); err != nil {
		return 0, err
	}
	if err := w.commitMembers(ctx, otherPuts, orgOf, orgRev, progress); err != nil {
		return len(orgPuts), err
	}
	return len(orgPuts) + len(otherPuts), nil
}

// commitOrgs writes the org puts one transaction after another, each
// guarded by no org having changed since the last (the first: since
// readRev), and those moving an org by its members being unchanged since
// readRev. It records the revision each org was written at in orgRev.
func (w *Writer) commitOrgs(ctx context.Context, ops []clientv3.Op, readRev int64, moving map[string]bool, orgRev map[string]int64, progress *progressReporter) error {
	last := readRev
	// Up to 3 guards per org (its member directories) and one for orgs/:
	// within etcd's limit of 128 compares too.
	const perTxn = (maxTxnOps - 1) / 3
	for start := 0; start < len(ops); start += perTxn {
		batch := ops[start:min(start+perTxn, len(ops))]
		guard := []clientv3.Cmp{w.unchangedSince(Dir(KindOrg), last)}
		for _, op := range batch {
			k, _ := ParseKey(w.prefix, string(op.KeyBytes()))
			if moving[k.Name] {
				for _, dir := range memberDirs(k.Name) {
					guard = append(guard, w.unchangedSince(dir, readRev))
				}
			}
		}
		txn, err := w.cli.Txn(ctx).If(guard...).Then(batch...).Commit()
		if err != nil {
			return fmt.Errorf("write batch starting at %s: %w", batch[0].KeyBytes(), err)
		}
		if !txn.Succeeded {
			return fmt.Errorf("write batch starting at %s: orgs (or members of an org changing network) changed while writing; try again", batch[0].KeyBytes())
		}
		last = txn.Header.Revision
		for _, op := range batch {
			k, _ := ParseKey(w.prefix, string(op.KeyBytes()))
			orgRev[k.Name] = last
		}
		progress.add(len(batch))
	}
	return nil
}

// commitMembers writes ops (apps, machines, peers, gateways, regions) in
// transactions of at most maxTxnOps, four at a time, each guarded by the
// orgs of its items (orgOf) being as they were checked (orgRev).
func (w *Writer) commitMembers(ctx context.Context, ops []clientv3.Op, orgOf []string, orgRev map[string]int64, progress *progressReporter) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for start := 0; start < len(ops); start += maxTxnOps {
		end := min(start+maxTxnOps, len(ops))
		batch := ops[start:end]
		var guard []clientv3.Cmp
		seen := map[string]bool{}
		for _, org := range orgOf[start:end] {
			if org != "" && !seen[org] {
				seen[org] = true
				guard = append(guard, clientv3.Compare(clientv3.ModRevision(w.key(OrgKey(org))), "=", orgRev[org]))
			}
		}
		g.Go(func() error {
			txn, err := w.cli.Txn(gctx).If(guard...).Then(batch...).Commit()
			if err != nil {
				return fmt.Errorf("write batch starting at %s: %w", batch[0].KeyBytes(), err)
			}
			if !txn.Succeeded {
				return fmt.Errorf("write batch starting at %s: an org of the batch changed while writing; try again", batch[0].KeyBytes())
			}
			progress.add(len(batch))
			return nil
		})
	}
	return g.Wait()
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
		return v.Key(), nil // validated by the caller
	case *AppValue:
		stamp(&v.UpdatedAt)
		err := v.Validate()
		if err == nil && v.Flycast.IsValid() {
			err = inOrg(v.Org, "flycast", v.Flycast)
		}
		return v.Key(), err
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
		return v.Key(), err
	case *Peer:
		stamp(&v.UpdatedAt)
		err := v.Validate()
		if err == nil {
			err = inOrg(v.Org, "ip", v.IP)
		}
		return v.Key(), err
	case *Gateway:
		stamp(&v.UpdatedAt)
		return v.Key(), v.Validate()
	case *Region:
		stamp(&v.UpdatedAt)
		return v.Key(), v.Validate()
	}
	return Key{}, fmt.Errorf("unsupported item type %T", it) // a new Item type PutAll does not know yet
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
