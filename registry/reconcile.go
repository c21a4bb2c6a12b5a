package registry

import (
	"context"
	"errors"
	"fmt"
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
	if _, _, err := s.readRange(ctx, s.cfg.Prefix+Dir(KindOrg), snap.Revision, func(kvs []*mvccpb.KeyValue) {
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
// between a and b, sorted (the serving rules' comparisons, rules.go).
func DiffSnapshots(a, b *Snapshot) []string {
	var out []string
	differ := func(k Key) bool { out = append(out, k.Path()); return true }
	orgs := map[string]bool{}
	for _, s := range []*Snapshot{a, b} {
		s.RangeOrgs(func(o *Org) bool { orgs[o.Name] = true; return true })
	}
	for name := range orgs {
		diffOrg(a.Org(name), b.Org(name), differ)
	}
	for code := range mapUnion(a.regions, b.regions) {
		x, y := a.regions[code], b.regions[code]
		if (x == nil) != (y == nil) || x != nil && !sameRegion(x, y) {
			differ(RegionKey(code))
		}
	}
	for region := range mapUnion(a.gateways, b.gateways) {
		x, y := a.gateways[region], b.gateways[region]
		if (x == nil) != (y == nil) || x != nil && !sameGateway(x, y) {
			differ(GatewayKey(region))
		}
	}
	slices.Sort(out)
	return out
}

// mapUnion is the set of keys of a and b.
func mapUnion[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
