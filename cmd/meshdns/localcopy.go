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
		log.Warn("ignoring the local copy of the registry; waiting for etcd", zap.String("path", path), zap.Error(err))
	default:
		log.Info("serving the local copy of the registry until etcd confirms it", zap.String("path", path),
			zap.Int64("revision", store.Revision()), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	return cluster
}

// saveLocalCopies writes the snapshot to the local copy whenever it has
// changed and etcd has confirmed it, at most once per interval, and once
// more when ctx ends.
func saveLocalCopies(ctx context.Context, o *options, store *registry.Store, sy *registry.Syncer, log *zap.Logger) {
	if o.localCopyInterval <= 0 {
		return
	}
	var saved int64
	save := func() {
		snap := store.Snapshot()
		if snap == nil || snap.Stale || snap.Revision == saved || sy.ClusterID() == 0 {
			return
		}
		start := time.Now()
		if err := registry.WriteCopy(localCopyPath(o), o.etcdPrefix, sy.ClusterID(), snap); err != nil {
			log.Warn("cannot save the local copy of the registry", zap.Error(err))
			return
		}
		saved = snap.Revision
		log.Debug("saved the local copy of the registry", zap.Int64("revision", saved),
			zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	t := time.NewTicker(o.localCopyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-t.C:
			save()
		}
	}
}
