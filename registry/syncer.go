package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	Client *clientv3.Client
	Prefix string
	Store  *Store
	Log    *zap.Logger
	// PageSize is the number of keys per page of a full load. Large pages
	// matter: etcd (3.7 too) counts the rest of the range on every page, so
	// a load costs etcd keys²/(2·PageSize) index visits — 61 million, about
	// 9 s of etcd CPU, for 1.1 million keys in pages of 10,000. Default
	// 100,000 (about 20 MB a page at meshbench's value sizes).
	PageSize int64
	// LoadGCPercent, when above 0, is the GC percentage (GOGC) while a
	// full load builds the registry, restored afterwards: the heap grows
	// by the whole registry, and collecting at every doubling marks the
	// growing registry again and again. The process-wide memory limit
	// (debug.SetMemoryLimit), if any, still bounds the heap.
	LoadGCPercent int
	// ProgressInterval is how often the watch asks etcd for a progress
	// notification, proving the watch is alive and current.
	ProgressInterval time.Duration
	// StallTimeout is how long the watch may go without any response
	// (event or progress) before it is torn down and restarted.
	StallTimeout time.Duration
	// RequestTimeout bounds each read of a full load.
	RequestTimeout time.Duration
	// ReloadJitter spreads every full load (at start without a usable
	// local copy, after a compacted watch, a restore or drift) over
	// [0, ReloadJitter), so a fleet reloading together does not read the
	// whole registry from etcd at once (pace.go).
	ReloadJitter time.Duration
	// LoadRate, when above 0, caps full reads (loads and reconciles) at
	// this many keys a second; pages are at most that many keys.
	LoadRate int
	// ReconcileInterval is how often the snapshot is compared with etcd's
	// contents at the snapshot's revision; any difference is logged with
	// its keys, counted, and repaired by a full load. 0 turns it off.
	ReconcileInterval time.Duration
	// ClusterID, when set, is the etcd cluster the store's snapshot came
	// from (a local copy's); a different cluster means a full load.
	ClusterID uint64
	// Connect, used when Client is nil, makes the client in Run, retried
	// with backoff: making one may talk to etcd (an auth token), which must
	// not hold up answering from the local copy. Run closes it.
	Connect func(context.Context) (*clientv3.Client, error)
}

// Status describes how current the store is with etcd.
type Status struct {
	// Ready is set once the snapshot has been confirmed current with etcd
	// (a load and an established watch), and cleared while the watch is
	// being restarted or has gone quiet for longer than StallTimeout.
	Ready bool
	// Revision is the etcd revision of the current snapshot.
	Revision int64
	// LastContact is when etcd last answered the syncer.
	LastContact time.Time
	// Loads counts full loads, WatchRestarts watches started again after an
	// error (resumed from the last revision, or after a reload).
	Loads, WatchRestarts uint64
	// LastError is the last error met talking to etcd, if any.
	LastError string
	// Reconciles counts comparisons with etcd; Drift counts the keys they
	// found differing (zero in a healthy run).
	Reconciles, Drift uint64
	// ClusterID is the etcd cluster last talked to.
	ClusterID uint64
	// HistoryResets counts, by reason (ResetReasons), the times etcd's
	// history was found not to be the snapshot's; Resetting is the reason
	// of one whose full load has not completed ("" when none).
	HistoryResets map[string]uint64
	Resetting     string
}

// Syncer keeps a Store current with etcd: it loads the registry at one
// revision, then watches from the next revision and applies every event.
// If the watch's revision was compacted it loads again in full; on any other
// watch failure it resumes from the last applied revision. It never skips
// ahead: the store's revision only moves with events or progress
// notifications that etcd sent.
type Syncer struct {
	cfg SyncerConfig

	ready         atomic.Bool
	lastContact   atomic.Int64 // unix nanoseconds
	loads         atomic.Uint64
	watchRestarts atomic.Uint64
	reconciles    atomic.Uint64
	drift         atomic.Uint64
	clusterID     atomic.Uint64
	// reload asks the running watch to stop for a full load (reconcile
	// found drift, or the cluster is not the one the snapshot came from).
	reload  chan string
	hist    historyState
	mu      sync.Mutex
	lastErr string
	// loadSpread is set once the jitter before a needed full load was
	// waited (Run's goroutine only).
	loadSpread bool
	// prefixChecks counts the watchdog's checks of the prefix (progress.go).
	prefixChecks atomic.Uint64
	// keyCount is the number of keys under the prefix at the snapshot's
	// revision, or -1 when not known (progress.go; Run's goroutine only).
	keyCount int64
}

// NewSyncer returns a Syncer; call Run to start it.
func NewSyncer(cfg SyncerConfig) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100000
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 2 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 3 * cfg.ProgressInterval
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Syncer{cfg: cfg, reload: make(chan string, 1), hist: historyState{client: make(chan struct{})}, keyCount: -1}
	s.clusterID.Store(cfg.ClusterID)
	return s
}

// ClusterID is the etcd cluster the store's snapshot reflects (0 before
// first contact), for labelling a local copy.
func (s *Syncer) ClusterID() uint64 { return s.clusterID.Load() }

// noteCluster records the cluster a response came from. It returns an
// error when the snapshot came from another cluster: then nothing from this
// one may be applied to it, and it must be loaded again in full.
func (s *Syncer) noteCluster(id uint64) error {
	if id == 0 {
		return nil
	}
	if old := s.clusterID.Swap(id); old != 0 && old != id {
		return s.historyReset(ResetClusterChanged, fmt.Sprintf("etcd cluster is %x, the snapshot came from %x", id, old))
	}
	return nil
}

func (s *Syncer) requestReload(why string) {
	select {
	case s.reload <- why:
	default:
	}
}

// Status reports the syncer's state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	lastErr := s.lastErr
	s.mu.Unlock()
	last := time.Unix(0, s.lastContact.Load())
	resetting := s.resetPending()
	return Status{
		Ready:         s.ready.Load() && resetting == "" && time.Since(last) < s.cfg.StallTimeout,
		Revision:      s.cfg.Store.Revision(),
		LastContact:   last,
		Loads:         s.loads.Load(),
		WatchRestarts: s.watchRestarts.Load(),
		LastError:     lastErr,
		Reconciles:    s.reconciles.Load(),
		Drift:         s.drift.Load(),
		ClusterID:     s.clusterID.Load(),
		HistoryResets: s.historyResets(),
		Resetting:     resetting,
	}
}

// errCompacted marks a watch that must be followed by a full load.
var errCompacted = errors.New("watch revision compacted")

// errStalled marks a watch that stopped answering.
var errStalled = errors.New("watch made no progress")

// errReload marks a watch stopped for a full load.
var errReload = errors.New("full load requested")

// Run keeps the store in sync until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	defer s.closeClient()
	needLoad := s.cfg.Store.Snapshot() == nil
	if s.cfg.ReconcileInterval > 0 {
		go s.reconcileLoop(ctx)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if needLoad {
			if !s.spreadLoad(ctx) {
				break
			}
			if err := s.load(ctx); err != nil {
				s.fail("full load", err)
				if !sleep(ctx, jitter(backoff)) {
					break
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			needLoad = false
			s.loaded()
			needLoad, s.loadSpread = false, false
		}
		start := time.Now()
		err := s.watchChecked(ctx)
		s.ready.Store(false)
		if ctx.Err() != nil {
			break
		}
		s.watchRestarts.Add(1)
		if s.resetPending() != "" {
			// spreadLoad waits the jittered delay before the load.
			s.discardSnapshot()
			needLoad = true
			continue
		} else if errors.Is(err, errCompacted) {
			s.cfg.Log.Warn("watch revision was compacted; loading the registry again in full",
				zap.Int64("revision", s.cfg.Store.Revision()))
			needLoad = true
			continue
		} else if errors.Is(err, errReload) {
			s.cfg.Log.Warn("loading the registry again in full", zap.String("reason", err.Error()))
			needLoad = true
			continue
		} else if errors.Is(err, errConnLost) {
			// No pause: the history check before the next watch waits
			// for the connection (bounded by StallTimeout).
			s.fail("watch", err)
			continue
		} else {
			s.fail("watch", err)
		}
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		if !sleep(ctx, jitter(backoff)) {
			break
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return ctx.Err()
}

func (s *Syncer) fail(what string, err error) {
	s.mu.Lock()
	s.lastErr = what + ": " + err.Error()
	s.mu.Unlock()
	last := time.Unix(0, s.lastContact.Load())
	s.cfg.Log.Warn("etcd "+what+" failed; answering from the last snapshot",
		zap.Error(err), zap.Int64("revision", s.cfg.Store.Revision()),
		zap.Duration("since_last_contact", time.Since(last).Round(time.Millisecond)))
}

func (s *Syncer) contact() { s.lastContact.Store(time.Now().UnixNano()) }

// load reads every key under the prefix at one revision, in pages, and
// replaces the store's snapshot with it.
func (s *Syncer) load(ctx context.Context) error {
	start := time.Now()
	if s.cfg.LoadGCPercent > 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(s.cfg.LoadGCPercent))
	}
	l := s.cfg.Store.BeginLoad()
	rev, n, err := s.readAll(ctx, 0, func(kvs []*mvccpb.KeyValue) {
		for _, kv := range kvs {
			l.Add(eventOf(kv))
		}
	})
	if err != nil {
		return err
	}
	l.ResolveClaims(s.getAt(ctx))
	l.Commit(rev)
	s.keyCount = int64(n)
	s.loads.Add(1)
	// The replaced snapshot and the pages read are garbage now: hand the
	// memory back soon instead of holding the reload's peak until the next
	// GC (which an idle server may not run for minutes) — but not here:
	// a forced GC of a big heap takes a long time (159 ms at 100,000
	// machines), and the watch, whose first events wait for it, starts
	// only when load returns. Queries never wait for it either way.
	go debug.FreeOSMemory()
	s.cfg.Log.Info("registry loaded", zap.Int("keys", n), zap.Int64("revision", rev),
		zap.Int("invalid", s.cfg.Store.InvalidCount()), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	return nil
}

// watch follows the registry from revision from until the watch fails.
func (s *Syncer) watch(ctx context.Context, from int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cfg.Client.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	ticker := time.NewTicker(s.cfg.ProgressInterval)
	defer ticker.Stop()
	// The watchdog (progress.go) tells when the snapshot is current and
	// when the watch stalled, with or without a gRPC proxy in between.
	wd := newWatchdog(s)
	var evs []Event
	// catchUp is etcd's revision when the watch started with history to
	// replay: reaching it means the snapshot is current.
	var catchUp int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			if err := wd.tick(wctx); err != nil {
				return err
			}
		case why := <-s.reload:
			return fmt.Errorf("%w: %s", errReload, why)
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return fmt.Errorf("%w (compacted at %d, wanted %d)", errCompacted, resp.CompactRevision, from)
			}
			if err := resp.Err(); err != nil {
				return err
			}
			if err := s.noteCluster(resp.Header.ClusterId); err != nil {
				return err
			}
			wd.heard()
			s.contact()
			if resp.Created {
				// Created says the watch runs, not that we have caught up:
				// a watch resumed from a local copy's old revision has
				// history to replay. It is current if etcd has not reached
				// its start yet; otherwise the progress notification we ask
				// for comes once everything before it was delivered.
				if cur, err := s.etcdRevision(wctx); err == nil && s.checkBehind(cur) != nil {
					return errHistoryReset
				} else if err == nil && cur < from {
					s.markReady()
				} else if err == nil {
					// Caught up once the events up to cur are applied.
					catchUp = cur
				}
				continue
			}
			if resp.IsProgressNotify() {
				if resp.Header.Revision < s.cfg.Store.Revision() {
					// A member behind the snapshot: lagging, or etcd lost
					// history. The check before the next watch tells.
					return fmt.Errorf("progress notification at revision %d, behind the snapshot's %d", resp.Header.Revision, s.cfg.Store.Revision())
				}
				wd.progress()
				// Everything up to this revision has been delivered.
				if resp.Header.Revision > s.cfg.Store.Revision() {
					s.cfg.Store.Apply(resp.Header.Revision, nil)
				}
				s.markReady()
				continue
			}
			evs = evs[:0]
			var rev int64
			for _, e := range resp.Events {
				if stale(s.cfg.Store.Revision(), e.Kv.ModRevision) {
					continue
				}
				s.countKey(e)
				ev := eventOf(e.Kv)
				if e.Type == mvccpb.DELETE {
					ev.Delete = true
				}
				rev = max(rev, e.Kv.ModRevision)
				evs = append(evs, ev)
			}
			if len(evs) > 0 {
				s.cfg.Store.Apply(rev, evs)
			}
			if catchUp != 0 && rev >= catchUp {
				s.markReady()
				catchUp = 0
			}
		}
	}
}

// markReady records that the snapshot is confirmed current with etcd. A
// snapshot still marked stale (read from the local copy) is republished
// unmarked, so readiness and reconciles see it as confirmed even when
// nothing was written to etcd since the copy was made.
func (s *Syncer) markReady() {
	if snap := s.cfg.Store.Snapshot(); snap != nil && snap.Stale {
		s.cfg.Store.Apply(snap.Revision, nil)
	}
	s.ready.Store(true)
}

// etcdRevision asks etcd for its current revision with a linearizable read
// of nothing, which also proves a leader is reachable.
func (s *Syncer) etcdRevision(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ProgressInterval)
	defer cancel()
	resp, err := s.cfg.Client.Get(rctx, s.cfg.Prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	s.contact()
	return resp.Header.Revision, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads retries of a fleet of servers over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
