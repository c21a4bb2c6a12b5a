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

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	Client *clientv3.Client
	Prefix string
	Store  *Store
	Log    *zap.Logger
	// PageSize is the number of keys per page of a full load. Large pages
	// matter: etcd before 3.7 recounts the rest of the range on every page.
	PageSize int64
	// ProgressInterval is how often the watch asks etcd for a progress
	// notification, proving the watch is alive and current.
	ProgressInterval time.Duration
	// StallTimeout is how long the watch may go without any response
	// (event or progress) before it is torn down and restarted.
	StallTimeout time.Duration
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
	mu            sync.Mutex
	lastErr       string
}

// NewSyncer returns a Syncer; call Run to start it.
func NewSyncer(cfg SyncerConfig) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 10000
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 5 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 3 * cfg.ProgressInterval
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Syncer{cfg: cfg}
}

// Status reports the syncer's state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	lastErr := s.lastErr
	s.mu.Unlock()
	last := time.Unix(0, s.lastContact.Load())
	return Status{
		Ready:         s.ready.Load() && time.Since(last) < s.cfg.StallTimeout,
		Revision:      s.cfg.Store.Revision(),
		LastContact:   last,
		Loads:         s.loads.Load(),
		WatchRestarts: s.watchRestarts.Load(),
		LastError:     lastErr,
	}
}

// errCompacted marks a watch that must be followed by a full load.
var errCompacted = errors.New("watch revision compacted")

// errStalled marks a watch that stopped answering.
var errStalled = errors.New("watch made no progress")

// Run keeps the store in sync until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	needLoad := s.cfg.Store.Snapshot() == nil
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if needLoad {
			if err := s.load(ctx); err != nil {
				s.fail("full load", err)
				if !sleep(ctx, jitter(backoff)) {
					break
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			needLoad = false
		}
		start := time.Now()
		err := s.watch(ctx, s.cfg.Store.Revision()+1)
		s.ready.Store(false)
		if ctx.Err() != nil {
			break
		}
		s.watchRestarts.Add(1)
		if errors.Is(err, errCompacted) {
			s.cfg.Log.Warn("watch revision was compacted; loading the registry again in full",
				zap.Int64("revision", s.cfg.Store.Revision()))
			needLoad = true
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
	end := clientv3.GetPrefixRangeEnd(s.cfg.Prefix)
	l := s.cfg.Store.BeginLoad()
	key := s.cfg.Prefix
	var rev int64
	n := 0
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(s.cfg.PageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cfg.Client.Get(ctx, key, opts...)
		if err != nil {
			return fmt.Errorf("read %s at revision %d: %w", key, rev, err)
		}
		s.contact()
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			l.Add(Event{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision})
		}
		n += len(resp.Kvs)
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	l.Commit(rev)
	s.loads.Add(1)
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
	lastResp := time.Now()
	var evs []Event
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			if time.Since(lastResp) > s.cfg.StallTimeout {
				return fmt.Errorf("%w for %s", errStalled, time.Since(lastResp).Round(time.Second))
			}
			// Errors here surface as silence, which the check above catches.
			rctx, rcancel := context.WithTimeout(wctx, s.cfg.ProgressInterval)
			_ = s.cfg.Client.RequestProgress(rctx)
			rcancel()
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
			lastResp = time.Now()
			s.contact()
			if resp.Created {
				s.ready.Store(true)
				continue
			}
			if resp.IsProgressNotify() {
				// Everything up to this revision has been delivered.
				if resp.Header.Revision > s.cfg.Store.Revision() {
					s.cfg.Store.Apply(resp.Header.Revision, nil)
				}
				s.ready.Store(true)
				continue
			}
			evs = evs[:0]
			var rev int64
			for _, e := range resp.Events {
				ev := Event{Key: string(e.Kv.Key), Value: e.Kv.Value, CreateRevision: e.Kv.CreateRevision, ModRevision: e.Kv.ModRevision}
				if e.Type == mvccpb.DELETE {
					ev.Delete = true
				}
				rev = max(rev, e.Kv.ModRevision)
				evs = append(evs, ev)
			}
			s.cfg.Store.Apply(rev, evs)
		}
	}
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
