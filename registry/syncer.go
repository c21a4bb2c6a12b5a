package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is what the syncer uses of an etcd client: reads (clientv3.KV),
// watches and progress requests (clientv3.Watcher). A *clientv3.Client is
// one; unit tests pass fakes. A client that also has ActiveConnection, as
// *clientv3.Client does, has its connection followed (restore.go).
type Etcd interface {
	clientv3.KV
	clientv3.Watcher
}

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	Client Etcd
	Prefix string
	Store  *Store
	Log    *zap.Logger
	// PageSize is the number of keys per page of a full load. Large pages
	// matter: etcd (3.7 too) counts the rest of the range on every page, so
	// a load costs etcd keys²/(2·PageSize) index visits — 61 million, about
	// 9 s of etcd CPU, for 1.1 million keys in pages of 10,000. Default
	// 100,000 (about 20 MB a page at meshbench's value sizes).
	PageSize int64
	// OnLoadStart and OnLoadEnd, when set, are called on Run's goroutine
	// before and after each full load (OnLoadEnd with the load's error, nil
	// when it was committed), and OnReconcileEnd after each periodic
	// reconcile. The registry changes no process-wide runtime state
	// itself: a program tunes its garbage collector in these (cmd/meshdns
	// raises GOGC during a load and hands memory back after one).
	OnLoadStart    func()
	OnLoadEnd      func(err error)
	OnReconcileEnd func()
	// Clock is the time the syncer runs on (default: the real clock).
	Clock Clock
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
	cfg   SyncerConfig
	clock Clock

	ready       atomic.Bool
	lastContact atomic.Int64 // unix nanoseconds
	// watchResponses counts the rounds of responses the watch loop took
	// (a batch of plain events counts once): the first of a watch
	// (Created) is etcd confirming it, which restore.go's stall timer
	// waits for.
	watchResponses atomic.Uint64
	loads          atomic.Uint64
	watchRestarts  atomic.Uint64
	reconciles     atomic.Uint64
	drift          atomic.Uint64
	clusterID      atomic.Uint64
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
	// keys is the number of keys under the prefix at a revision the
	// store has applied (progress.go).
	keys keyCount
	// watchdogTicked, when set (tests), is called after each of the
	// watchdog's ticks with its verdict.
	watchdogTicked func(error)
	// unorderedLogged is set once an etcd version that may send a
	// requested progress notification ahead of events was logged
	// (progressOrdered).
	unorderedLogged atomic.Bool
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
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	s := &Syncer{cfg: cfg, clock: cfg.Clock, reload: make(chan string, 1), hist: historyState{client: make(chan struct{})}}
	s.keys.forget()
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
		Ready:         s.ready.Load() && resetting == "" && s.since(last) < s.cfg.StallTimeout,
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
				if !s.sleep(ctx, jitter(backoff)) {
					break
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			needLoad = false
			s.loaded()
			needLoad, s.loadSpread = false, false
		}
		start := s.clock.Now()
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
		if s.since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		if !s.sleep(ctx, jitter(backoff)) {
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
		zap.Duration("since_last_contact", s.since(last).Round(time.Millisecond)))
}

func (s *Syncer) contact() { s.lastContact.Store(s.clock.Now().UnixNano()) }

// load reads every key under the prefix at one revision, in pages, and
// replaces the store's snapshot with it.
func (s *Syncer) load(ctx context.Context) (err error) {
	start := s.clock.Now()
	if s.cfg.OnLoadStart != nil {
		s.cfg.OnLoadStart()
	}
	if s.cfg.OnLoadEnd != nil {
		defer func() { s.cfg.OnLoadEnd(err) }()
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
	s.keys.set(rev, int64(n))
	s.loads.Add(1)
	s.cfg.Log.Info("registry loaded", zap.Int("keys", n), zap.Int64("revision", rev),
		zap.Int("invalid", s.cfg.Store.InvalidCount()), zap.Duration("took", s.since(start).Round(time.Millisecond)))
	return nil
}

// watch follows the registry from revision from until the watch fails.
// This is the event loop: it receives the watch's responses and applies
// them to the store, and never waits for an answer from etcd. The
// watchdog (progress.go) runs beside it in a goroutine of its own, asks
// etcd what it needs to know, and ends the watch, cancelling its context
// with the reason, when it has stalled.
func (s *Syncer) watch(ctx context.Context, from int64) error {
	wctx, stop := context.WithCancelCause(clientv3.WithRequireLeader(ctx))
	defer stop(nil)
	wch := s.cfg.Client.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	// The watchdog tells when the snapshot is current and when the watch
	// stalled, with or without a gRPC proxy in between. It has ended
	// before watch returns.
	wd := newWatchdog(s)
	wdDone := make(chan struct{})
	go func() {
		defer close(wdDone)
		wd.run(wctx, stop)
	}()
	defer func() {
		stop(nil)
		<-wdDone
	}()
	var evs []Event
	// held is what the watch gave while batching (below) that is not
	// plain events — another kind of response, or the channel closed —
	// to be handled on its own first in the next round.
	var held *watchRecv
	for {
		var resp clientv3.WatchResponse
		var ok bool
		if held != nil {
			resp, ok, held = held.resp, held.ok, nil
		} else {
			select {
			case <-wctx.Done():
				if err := ctx.Err(); err != nil {
					return err
				}
				return context.Cause(wctx) // the watchdog's verdict
			case why := <-s.reload:
				return fmt.Errorf("%w: %s", errReload, why)
			case resp, ok = <-wch:
			}
		}
		if !ok {
			if err := context.Cause(wctx); err != nil && ctx.Err() == nil {
				return err
			}
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
		s.watchResponses.Add(1)
		if resp.Created {
			// Created says the watch runs, not that we have caught up:
			// a watch resumed from a local copy's old revision has
			// history to replay. The watchdog reads etcd's revision
			// to tell (watchdog.created).
			wd.created()
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
			s.keys.advance(resp.Header.Revision)
			s.markReady(resp.Header.Revision)
			continue
		}
		evs = evs[:0]
		var rev, delta int64
		add := func(resp *clientv3.WatchResponse) {
			for _, e := range resp.Events {
				if stale(s.cfg.Store.Revision(), e.Kv.ModRevision) {
					continue
				}
				delta += keyDelta(e)
				ev := eventOf(e.Kv)
				if e.Type == mvccpb.DELETE {
					ev.Delete = true
				}
				rev = max(rev, e.Kv.ModRevision)
				evs = append(evs, ev)
			}
		}
		add(&resp)
		// Responses the watch has already delivered go into the same
		// Apply, one snapshot for all of them: a syncer that fell behind
		// (a busy host, a burst of writes) catches up at a fraction of
		// the cost per event, instead of staying behind. Nothing waits
		// for more: with nothing queued this is one response, as before.
	batch:
		for range maxWatchBatch {
			select {
			case more, open := <-wch:
				if !open || !plainEvents(&more, resp.Header.ClusterId) {
					held = &watchRecv{more, open}
					break batch
				}
				wd.heard()
				add(&more)
			default:
				break batch
			}
		}
		if len(evs) > 0 {
			s.cfg.Store.Apply(rev, evs)
			s.keys.add(rev, delta)
		}
		wd.applied(rev)
	}
}

// watchRecv is one receive from a watch channel.
type watchRecv struct {
	resp clientv3.WatchResponse
	ok   bool
}

// maxWatchBatch is how many queued watch responses at most join one Apply.
const maxWatchBatch = 256

// plainEvents reports whether a watch response holds only events, from the
// cluster the watch was on: no error, no compaction, not created, not a
// progress notification. Only such responses are batched.
func plainEvents(r *clientv3.WatchResponse, cluster uint64) bool {
	return r.Err() == nil && r.CompactRevision == 0 && !r.Created && !r.Canceled &&
		!r.IsProgressNotify() && r.Header.ClusterId == cluster && len(r.Events) > 0
}

// markReady records that the snapshot is confirmed current with etcd up to
// revision rev (0: its own). The store moves to rev only if it is not
// already past it, inside its lock, so the watchdog may call this while the
// event loop applies later events; a snapshot still marked stale (read from
// the local copy) is republished unmarked, so readiness and reconciles see
// it as confirmed even when nothing was written to etcd since the copy was
// made.
func (s *Syncer) markReady(rev int64) {
	s.cfg.Store.confirm(rev)
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

// jitter spreads retries of a fleet of servers over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
