package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writer writes registry values to etcd. Every value is validated before it
// is sent, including the rules that involve other keys (an address inside
// its org's network, a network held by one org only), so a rejected write
// never reaches etcd. Writes that depend on the org's network are guarded by
// a transaction on the org key, so a concurrent network change cannot slip
// between the check and the write.
type Writer struct {
	cli    *clientv3.Client
	prefix string
	now    func() time.Time
	// beforeCommit, when set (tests), runs after PutAll's checks and
	// before its first write: the window its guards close.
	beforeCommit func()
	// beforePeerCommit, when set (tests), runs after CreatePeer's read
	// and before its guarded write.
	beforePeerCommit func()
}

// NewWriter returns a Writer for keys under prefix.
func NewWriter(cli *clientv3.Client, prefix string) *Writer {
	return &Writer{cli: cli, prefix: prefix, now: time.Now}
}

// PutOption changes how a value is written.
type PutOption func(*putOptions)

type putOptions struct {
	lease    clientv3.LeaseID
	progress func(written, total int) // WithProgress (progress.go)
}

// WithLease attaches the key to an etcd lease: when the lease expires (its
// holder stopped refreshing it) the key is deleted and the object leaves DNS.
func WithLease(id clientv3.LeaseID) PutOption { return func(o *putOptions) { o.lease = id } }

// ErrNotFound is returned for a key that does not exist.
var ErrNotFound = errors.New("not found")

// Grant creates a lease that expires after ttl unless kept alive.
func (w *Writer) Grant(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	secs := int64(ttl / time.Second)
	if secs < 1 {
		return 0, fmt.Errorf("lease ttl %s: must be at least 1s", ttl)
	}
	resp, err := w.cli.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return resp.ID, nil
}

func (w *Writer) key(k Key) string { return w.prefix + k.Path() }

// PutOrg creates or updates an org. Its network must not be held by another
// org, and a new network must still hold every address of the org's apps,
// machines and peers. Both checks are guarded: if an org, or a member of
// this one, is written between the check and the write, the write fails.
func (w *Writer) PutOrg(ctx context.Context, o OrgValue, opts ...PutOption) error {
	if err := o.Validate(); err != nil {
		return err
	}
	resp, err := w.cli.Get(ctx, w.prefix+Dir(KindOrg), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list orgs/: %w", err)
	}
	rev := resp.Header.Revision
	var current *OrgValue
	var other string // another org naming o.Network
	for _, kv := range resp.Kvs {
		k, err := ParseKey(w.prefix, string(kv.Key))
		if err != nil {
			continue
		}
		v, err := Decode(k, kv.Value)
		if err != nil {
			continue
		}
		if k.Name == o.Name {
			current = v.(*OrgValue)
		} else if v.(*OrgValue).Network == o.Network && other == "" {
			other = k.Name
		}
	}
	// Naming a network another org names is refused, unless this org
	// named it already: rewriting it keeps the org's claim (dateClaim).
	if other != "" && (current == nil || current.Network != o.Network) {
		return fmt.Errorf("network %s: already belongs to org %s", o.Network, other)
	}
	guard := []clientv3.Cmp{w.unchangedSince(Dir(KindOrg), rev)}
	if current != nil && current.Network != o.Network {
		if err := w.checkMembers(ctx, o.Name, o.Network, rev, nil); err != nil {
			return err
		}
		for _, dir := range memberDirs(o.Name) {
			guard = append(guard, w.unchangedSince(dir, rev))
		}
	}
	o.UpdatedAt = w.stamp(o.UpdatedAt)
	return w.put(ctx, OrgKey(o.Name), o, guard, opts)
}

// memberDirs are the directories holding an org's apps, machines and peers.
func memberDirs(org string) []string {
	return []string{Dir(KindApp, org), Dir(KindMachine, org), Dir(KindPeer, org)}
}

// unchangedSince is a guard that no key under dir was written after rev.
func (w *Writer) unchangedSince(dir string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(w.prefix+dir), "<", rev+1).WithPrefix()
}

// checkMembers fails if an app, machine or peer of org (as of rev, or the
// latest revision when rev is 0) has an address outside network. Keys in
// skip are left out (they are being rewritten), and so are values that do
// not decode, which are not served whatever the network.
func (w *Writer) checkMembers(ctx context.Context, org string, network netip.Prefix, rev int64, skip map[string]bool) error {
	for _, dir := range memberDirs(org) {
		resp, err := w.cli.Get(ctx, w.prefix+dir, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, kv := range resp.Kvs {
			k, err := ParseKey(w.prefix, string(kv.Key))
			if err != nil || skip[string(kv.Key)] {
				continue
			}
			v, err := Decode(k, kv.Value)
			if err != nil {
				continue
			}
			field, a := "ip", netip.Addr{}
			switch v := v.(type) {
			case *AppValue:
				field, a = "flycast", v.Flycast
			case *Machine:
				a = v.IP
			case *Peer:
				a = v.IP
			}
			if a.IsValid() && !network.Contains(a) {
				return fmt.Errorf("org %s: moving to network %s would leave %s (%s %s) outside it; move or remove it first", org, network, k, field, a)
			}
		}
	}
	return nil
}

// PutApp creates or updates an app.
func (w *Writer) PutApp(ctx context.Context, a AppValue, opts ...PutOption) error {
	if err := a.Validate(); err != nil {
		return err
	}
	org, rev, err := w.org(ctx, a.Org)
	if err != nil {
		return err
	}
	if a.Flycast.IsValid() {
		if err := CheckAddrIn("flycast", a.Flycast, org.Network); err != nil {
			return err
		}
	}
	a.UpdatedAt = w.stamp(a.UpdatedAt)
	return w.put(ctx, AppKey(a.Org, a.Name), a, w.orgGuard(a.Org, rev), opts)
}

// PutMachine creates or updates a machine.
func (w *Writer) PutMachine(ctx context.Context, m Machine, opts ...PutOption) error {
	if m.ProcessGroup == "" {
		m.ProcessGroup = DefaultProcessGroup
	}
	if err := m.Validate(); err != nil {
		return err
	}
	org, rev, err := w.org(ctx, m.Org)
	if err != nil {
		return err
	}
	if err := CheckMachineAddr(m.IP, org.Network); err != nil {
		return err
	}
	m.UpdatedAt = w.stamp(m.UpdatedAt)
	return w.put(ctx, MachineKey(m.Org, m.App, m.ID), m, w.orgGuard(m.Org, rev), opts)
}

// SetMachineState changes the state of an existing machine, keeping
// everything else (and its lease) as it is.
func (w *Writer) SetMachineState(ctx context.Context, org, app, id, state string) error {
	if err := CheckState(state); err != nil {
		return err
	}
	return w.rewriteMachine(ctx, MachineKey(org, app, id), func(*Machine) (string, any, error) { return "state", state, nil })
}

// SetMachineCheck sets the status of one health check of a machine
// (passing, warning or critical), keeping its other checks, the rest of
// its value and its lease.
func (w *Writer) SetMachineCheck(ctx context.Context, org, app, id, check, status string) error {
	if err := firstErr(CheckCheckName(check), CheckCheckStatus(check, status)); err != nil {
		return err
	}
	return w.rewriteMachine(ctx, MachineKey(org, app, id), func(m *Machine) (string, any, error) {
		checks := map[string]string{}
		for k, v := range m.Checks {
			checks[k] = v
		}
		checks[check] = status
		return "checks", checks, nil
	})
}

// rewriteMachine sets one field of a machine's stored value (and stamps
// it), with a compare-and-swap on its revision, keeping its lease and any
// fields a newer writer added that this one does not know (SPEC §3). set
// is given the current value and returns the field and its new value.
func (w *Writer) rewriteMachine(ctx context.Context, k Key, set func(*Machine) (string, any, error)) error {
	for attempt := 0; attempt < 10; attempt++ {
		resp, err := w.cli.Get(ctx, w.key(k))
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("machine %s: %w", k, ErrNotFound)
		}
		kv := resp.Kvs[0]
		v, err := Decode(k, kv.Value)
		if err != nil {
			return fmt.Errorf("machine %s holds an invalid value (%v); put it again in full", k, err)
		}
		field, value, err := set(v.(*Machine))
		if err != nil {
			return err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(kv.Value, &fields); err != nil {
			return fmt.Errorf("machine %s: %w", k, err)
		}
		for name := range fields {
			if strings.EqualFold(name, field) || strings.EqualFold(name, "updated_at") {
				delete(fields, name) // json matches names case-insensitively
			}
		}
		fields[field], _ = json.Marshal(value)
		fields["updated_at"], _ = json.Marshal(w.now().UTC())
		data, err := json.Marshal(fields)
		if err != nil {
			return err
		}
		txn, err := w.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(w.key(k)), "=", kv.ModRevision)).
			Then(clientv3.OpPut(w.key(k), string(data), clientv3.WithIgnoreLease())).
			Commit()
		if err != nil {
			return fmt.Errorf("write %s: %w", k, err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("machine %s: changed concurrently too often; try again", k)
}

// PutPeer creates or updates a WireGuard peer.
func (w *Writer) PutPeer(ctx context.Context, p Peer, opts ...PutOption) error {
	if err := p.Validate(); err != nil {
		return err
	}
	org, rev, err := w.org(ctx, p.Org)
	if err != nil {
		return err
	}
	if err := CheckAddrIn("ip", p.IP, org.Network); err != nil {
		return err
	}
	p.UpdatedAt = w.stamp(p.UpdatedAt)
	return w.put(ctx, PeerKey(p.Org, p.Name), p, w.orgGuard(p.Org, rev), opts)
}

// PutGateway creates or updates the WireGuard gateway of a region.
func (w *Writer) PutGateway(ctx context.Context, g Gateway, opts ...PutOption) error {
	if err := g.Validate(); err != nil {
		return err
	}
	g.UpdatedAt = w.stamp(g.UpdatedAt)
	return w.put(ctx, GatewayKey(g.Region), g, nil, opts)
}

// PutRegion adds a region or overrides a built-in one.
func (w *Writer) PutRegion(ctx context.Context, r Region, opts ...PutOption) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r.UpdatedAt = w.stamp(r.UpdatedAt)
	return w.put(ctx, RegionKey(r.Code), r, nil, opts)
}

// Delete removes one key. Deleting a key that does not exist is an error,
// so a typo does not pass silently.
func (w *Writer) Delete(ctx context.Context, k Key) error {
	resp, err := w.cli.Delete(ctx, w.key(k))
	if err != nil {
		return fmt.Errorf("delete %s: %w", k, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	return nil
}

// DeleteOrg removes an org with all its apps, machines and peers in one
// transaction.
func (w *Writer) DeleteOrg(ctx context.Context, org string) error {
	if err := CheckLabel("org", org); err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpDelete(w.key(OrgKey(org)))}
	for _, dir := range memberDirs(org) {
		ops = append(ops, clientv3.OpDelete(w.prefix+dir, clientv3.WithPrefix()))
	}
	_, err := w.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("delete org %s: %w", org, err)
	}
	return nil
}

// Get reads and decodes one value.
func (w *Writer) Get(ctx context.Context, k Key) (any, error) {
	resp, err := w.cli.Get(ctx, w.key(k))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	v, err := Decode(k, resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return v, nil
}

// List returns the raw entries whose path below the prefix starts with dir,
// e.g. "machines/acme/" or "orgs/", sorted by key.
func (w *Writer) List(ctx context.Context, dir string) ([]Event, error) {
	return w.list(ctx, dir)
}

func (w *Writer) list(ctx context.Context, dir string) ([]Event, error) {
	resp, err := w.cli.Get(ctx, w.prefix+dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := make([]Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, Event{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version})
	}
	return out, nil
}

// org reads an org's value and the revision it was read at.
func (w *Writer) org(ctx context.Context, name string) (*OrgValue, int64, error) {
	k := OrgKey(name)
	resp, err := w.cli.Get(ctx, w.key(k))
	if err != nil {
		return nil, 0, fmt.Errorf("read org %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("org %q: not registered (create it first with its network)", name)
	}
	v, err := Decode(k, resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("org %q holds an invalid value: %w", name, err)
	}
	return v.(*OrgValue), resp.Kvs[0].ModRevision, nil
}

func (w *Writer) orgGuard(org string, rev int64) []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(w.key(OrgKey(org))), "=", rev)}
}

func (w *Writer) stamp(t time.Time) time.Time {
	if t.IsZero() {
		return w.now().UTC()
	}
	return t
}

func (w *Writer) put(ctx context.Context, k Key, v any, guard []clientv3.Cmp, opts []PutOption) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	txn, err := w.cli.Txn(ctx).If(guard...).Then(clientv3.OpPut(w.key(k), string(data), leaseOpts(opts)...)).Commit()
	if err != nil {
		return fmt.Errorf("write %s: %w", k, err)
	}
	if !txn.Succeeded {
		if k.Kind == KindOrg {
			return fmt.Errorf("write %s: orgs changed while writing; try again", k)
		}
		return fmt.Errorf("write %s: org %s changed while writing; try again", k, k.Org)
	}
	return nil
}
