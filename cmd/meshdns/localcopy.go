package main

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/meshdns/meshdns/registry"
)

// localCopyPath is where the snapshot's local copy lives in --data-dir.
func localCopyPath(o *options) string { return filepath.Join(o.dataDir, "local-copy.json.gz") }

// loadLocalCopy serves the last saved snapshot at once, marked stale until
// etcd confirms it, and returns the etcd cluster it came from (0 if none).
// A copy that cannot be trusted is ignored, never served.
func loadLocalCopy(o *options, store *registry.Store, log *zap.Logger) uint64 {
	if o.localCopyInterval <= 0 {
		return 0
	}
	path := localCopyPath(o)
	start := time.Now()
	cluster, err := store.LoadCopy(path, o.etcdPrefix)
	switch {
	case errors.Is(err, registry.ErrNoCopy):
		log.Info("no local copy of the registry; waiting for etcd", zap.String("path", path))
	case err != nil:
		// Corrupt, cut off, over the reading limits (registry.LoadCopy),
		// or for another prefix: the full load from etcd replaces it.
		log.Warn("ignoring the local copy of the registry; loading the whole registry from etcd instead", zap.String("path", path), zap.Error(err))
	default:
		log.Info("serving the local copy of the registry until etcd confirms it", zap.String("path", path),
			zap.Int64("revision", store.Revision()), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	return cluster
}

// refreshSaves is how many --local-copy-interval periods a copy whose
// data did not change may keep its old revision: etcd's revision moves
// with every write anywhere in the cluster (progress notifications carry
// it to the snapshot), and rewriting a copy of a million machines for that
// every 30 s is wasted work; but a copy far behind may find its revision
// compacted at restart, which costs a full load instead of a catch-up.
const refreshSaves = 20

// saveLocalCopies writes the snapshot to the local copy whenever what it
// serves has changed and etcd has confirmed it, at most once per interval,
// and once more when ctx ends; a snapshot that only moved to a later
// revision is saved again only every refreshSaves intervals.
func saveLocalCopies(ctx context.Context, o *options, store *registry.Store, sy *registry.Syncer, log *zap.Logger) {
	if o.localCopyInterval <= 0 {
		return
	}
	c := newCopySaver(o, store, sy, log, time.Now())
	t := time.NewTicker(o.localCopyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.save(time.Now(), true)
			return
		case now := <-t.C:
			c.save(now, false)
		}
	}
}

// copySaver decides, at each tick of saveLocalCopies, whether the local
// copy is saved; the time comes in from the caller, so tests drive it.
type copySaver struct {
	o     *options
	store *registry.Store
	sy    *registry.Syncer
	log   *zap.Logger

	savedRev  int64
	savedData uint64
	savedAt   time.Time
	haveSaved bool
}

func newCopySaver(o *options, store *registry.Store, sy *registry.Syncer, log *zap.Logger, now time.Time) *copySaver {
	c := &copySaver{o: o, store: store, sy: sy, log: log}
	if snap := store.Snapshot(); snap != nil && snap.Stale {
		// Served from the local copy: that is what the file holds.
		c.savedRev, c.savedData, c.savedAt, c.haveSaved = snap.Revision, snap.DataVersion(), now, true
	}
	return c
}

// save writes the copy if it is due at now; final (at shutdown) writes any
// snapshot newer than the saved one.
func (c *copySaver) save(now time.Time, final bool) {
	snap := c.store.Snapshot()
	if snap == nil || snap.Stale || c.sy.ClusterID() == 0 {
		return
	}
	if c.haveSaved && snap.DataVersion() == c.savedData {
		if snap.Revision == c.savedRev || !final && now.Sub(c.savedAt) < refreshSaves*c.o.localCopyInterval {
			return
		}
	}
	start := time.Now()
	if err := registry.WriteCopy(localCopyPath(c.o), c.o.etcdPrefix, c.sy.ClusterID(), snap); err != nil {
		c.log.Warn("cannot save the local copy of the registry", zap.Error(err))
		return
	}
	c.savedRev, c.savedData, c.savedAt, c.haveSaved = snap.Revision, snap.DataVersion(), now, true
	c.log.Debug("saved the local copy of the registry", zap.Int64("revision", snap.Revision),
		zap.Duration("took", time.Since(start).Round(time.Millisecond)))
}
