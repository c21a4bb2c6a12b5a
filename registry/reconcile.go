package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

// A watch can miss events without saying so (a bug, a partitioned member):
// servers that never compared their cache with the source served deleted
// records for months. The reconcile reads etcd at the revision of the
// current snapshot — the same point in history — works out what it would
// serve, and compares. A difference is drift: logged with its keys,
// counted, and repaired by a full load through the watch loop.

func (s *Syncer) reconcileLoop(ctx context.Context) {
	t := s.clock.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if !s.ready.Load() {
			continue
		}
		diff, err := s.Reconcile(ctx)
		// The pages read are garbage now; the program may collect and
		// hand the memory back (cmd/meshdns does), on this goroutine:
		// nothing waits for it.
		if s.cfg.OnReconcileEnd != nil {
			s.cfg.OnReconcileEnd()
		}
		if errors.Is(err, errHistoryReset) {
			s.requestReload(err.Error())
			continue
		}
		if err != nil {
			s.cfg.Log.Info("reconcile skipped", zap.Error(err))
			continue
		}
		if len(diff) > 0 {
			s.requestReload(fmt.Sprintf("reconcile found %d differing keys", len(diff)))
		}
	}
}

// Reconcile compares the current snapshot with etcd's contents at the
// snapshot's revision and returns the registry paths that differ. It counts
// and logs any drift; the caller decides how to repair it. It reads the
// registry page by page and compares as it goes (see comparer): no second
// copy of the registry is built, so a reconcile costs a page of memory.
func (s *Syncer) Reconcile(ctx context.Context) ([]string, error) {
	snap := s.cfg.Store.Snapshot()
	if snap == nil || snap.Stale {
		return nil, fmt.Errorf("no confirmed snapshot yet")
	}
	c := newComparer(s.cfg.Prefix, snap)
	c.getAt = s.getAt(ctx)
	// Orgs first: whether an org is served decides about every key under
	// it, and orgs/ sorts after apps/ and machines/. Both reads are at the
	// snapshot's revision, so they see one state of etcd. A compacted
	// revision or an etcd that is away leaves nothing to compare against
	// this time.
	if _, _, err := s.readRange(ctx, s.cfg.Prefix+"orgs/", snap.Revision, func(kvs []*mvccpb.KeyValue) {
		for _, kv := range kvs {
			c.org(eventOf(kv))
		}
	}); err != nil {
		return nil, s.resetOnFutureRevision(err, snap.Revision)
	}
	c.orgsDone()
	if _, _, err := s.readAll(ctx, snap.Revision, func(kvs []*mvccpb.KeyValue) {
		for _, kv := range kvs {
			c.add(eventOf(kv))
		}
	}); err != nil {
		return nil, s.resetOnFutureRevision(err, snap.Revision)
	}
	diff := c.finish()
	s.reconciles.Add(1)
	if len(diff) > 0 {
		s.drift.Add(uint64(len(diff)))
		shown := diff[:min(len(diff), 20)]
		s.cfg.Log.Error("snapshot differs from etcd; repairing with a full load",
			zap.Int64("revision", snap.Revision), zap.Int("keys", len(diff)), zap.Strings("first_keys", shown))
	}
	return diff, nil
}

// DiffSnapshots lists the registry paths whose served value differs
// between a and b, sorted.
func DiffSnapshots(a, b *Snapshot) []string {
	av, bv := servedObjects(a), servedObjects(b)
	var out []string
	for k, x := range av {
		if y, ok := bv[k]; !ok || !reflect.DeepEqual(x, y) {
			out = append(out, k)
		}
	}
	for k := range bv {
		if _, ok := av[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// servedObjects flattens what a snapshot serves into path → value.
func servedObjects(s *Snapshot) map[string]any {
	out := map[string]any{}
	for code, r := range s.regions {
		out[RegionKey(code).Path()] = *r
	}
	for region, g := range s.gateways {
		out[GatewayKey(region).Path()] = *g
	}
	s.RangeOrgs(func(o *Org) bool {
		servedOrg(o, out)
		return true
	})
	return out
}

// servedOrg adds what one org serves to out.
func servedOrg(o *Org, out map[string]any) {
	out[OrgKey(o.Name).Path()] = o.Network
	for _, an := range o.AppNames() {
		a := o.App(an)
		out[AppKey(o.Name, an).Path()] = a.Flycast
		for _, m := range a.Machines {
			mv := *m
			mv.Metadata = maps.Clone(m.Metadata)
			mv.Checks = maps.Clone(m.Checks)
			mv.Services = slices.Clone(m.Services)
			out[MachineKey(o.Name, an, m.ID).Path()] = mv
		}
	}
	for _, pn := range o.PeerNames() {
		out[PeerKey(o.Name, pn).Path()] = *o.Peer(pn)
	}
}

// sameServed reports whether two versions of an org serve the same data.
func sameServed(a, b *Org) bool {
	if a.Network != b.Network || len(a.AppNames()) != len(b.AppNames()) || len(a.PeerNames()) != len(b.PeerNames()) {
		return false
	}
	x, y := map[string]any{}, map[string]any{}
	servedOrg(a, x)
	servedOrg(b, y)
	return reflect.DeepEqual(x, y)
}
