package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// A snapshot is only a copy of etcd's history up to its revision. When
// etcd's history is replaced — restored from a backup (`etcdctl snapshot
// save` … `snapshot restore`), an embedded etcd whose data directory was
// lost while the local copy survived, an external cluster rebuilt — etcd
// keeps its cluster and member ids and starts again at an older revision.
// Resuming the watch from the snapshot's revision would then wait for a
// revision that, when it comes, belongs to another history: the server
// would report ready, serve the old registry and drop or mix up every later
// write. So before every watch (re)start the syncer checks that etcd
// continues the snapshot's history:
//
//   - etcd's revision (a linearizable read) must not be behind the
//     snapshot's;
//   - the snapshot's witness — the last put it applied — must be in etcd at
//     its revision with the same value. A history that diverged and then
//     passed the snapshot's revision has other writes at those revision
//     numbers, which a revision comparison alone cannot see;
//   - the cluster id must be the one the snapshot came from.
//
// A reconcile that finds the snapshot's revision in etcd's future says the
// same. Any of these is a history reset: logged as an error, counted by
// reason, the snapshot marked stale (still answered from, not ready) and
// replaced by a full load. The watch is also restarted whenever the client's
// connection to etcd drops, so that the check runs before the client's own
// transparent watch resumption could apply another history's events; the
// witness taken when the connection dropped is the one checked.

// Witness names one put of the history a snapshot followed: the key, the
// revision it was written at and a hash of the value. etcd read at that
// revision holds the same only if its history is the snapshot's.
type Witness struct {
	Key         string
	ModRevision int64
	Hash        uint64
}

// hashValue is the witness hash of a value (FNV-1a, 64 bits).
func hashValue(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

// Witness is the last put the snapshot applied (zero for an empty registry).
func (s *Snapshot) Witness() Witness { return s.witness }

// Reasons for a history reset, the label of its counter.
const (
	// ResetRevisionBehind: etcd's revision is behind the snapshot's.
	ResetRevisionBehind = "revision_behind"
	// ResetFutureRevision: a read at the snapshot's revision was refused as
	// a future revision.
	ResetFutureRevision = "future_revision"
	// ResetDiverged: etcd holds something else at the witness's revision.
	ResetDiverged = "history_diverged"
	// ResetClusterChanged: etcd answered with another cluster id.
	ResetClusterChanged = "cluster_changed"
)

// ResetReasons lists every reason, for metrics that show all of them.
var ResetReasons = []string{ResetRevisionBehind, ResetFutureRevision, ResetDiverged, ResetClusterChanged}

// errHistoryReset marks an etcd whose history is not the snapshot's.
var errHistoryReset = errors.New("etcd's history does not continue the snapshot's")

// errConnLost marks a watch stopped because the connection to etcd dropped.
var errConnLost = errors.New("connection to etcd lost")

// historyState is the syncer's bookkeeping of history resets.
type historyState struct {
	mu     sync.Mutex
	counts map[string]uint64
	// pending is the reason of a reset whose full load has not completed.
	pending string
	// lost is the snapshot's witness when the connection to etcd last
	// dropped, checked at the next watch start.
	lost Witness
	// client is closed once cfg.Client is set; own says Run made it.
	client chan struct{}
	own    bool
	// follow starts followConn once; drops counts the connection's drops;
	// cancelWatch stops the running watch; verified is the last snapshot
	// the history check passed for.
	follow      sync.Once
	drops       uint64
	cancelWatch context.CancelCauseFunc
	verified    verifiedState
}

// verifiedState is a snapshot (revision and witness) whose history check
// passed, with the connection drop count at the time.
type verifiedState struct {
	ok    bool
	rev   int64
	w     Witness
	drops uint64
}

// historyReset records that etcd's history is not the snapshot's and returns
// an error for the watch loop, which discards the snapshot (marks it stale)
// and loads the registry again in full. Safe from any goroutine.
func (s *Syncer) historyReset(reason, detail string) error {
	s.hist.mu.Lock()
	if s.hist.counts == nil {
		s.hist.counts = map[string]uint64{}
	}
	s.hist.counts[reason]++
	s.hist.pending = reason
	s.hist.verified = verifiedState{}
	s.hist.mu.Unlock()
	s.ready.Store(false)
	s.cfg.Log.Error("etcd's history is not the one the snapshot followed (etcd restored from a backup, its data lost or the cluster rebuilt); "+
		"discarding the snapshot and loading the registry again in full",
		zap.String("reason", reason), zap.String("detail", detail), zap.Int64("snapshot_revision", s.cfg.Store.Revision()))
	return fmt.Errorf("%w (%s): %s", errHistoryReset, reason, detail)
}

// resetPending is the reason of a reset whose full load is still to come.
func (s *Syncer) resetPending() string {
	s.hist.mu.Lock()
	defer s.hist.mu.Unlock()
	return s.hist.pending
}

// loaded ends a reset: a full load replaced the snapshot, so etcd's history
// is the snapshot's now.
func (s *Syncer) loaded() {
	s.hist.mu.Lock()
	s.hist.pending, s.hist.lost = "", Witness{}
	s.hist.mu.Unlock()
}

// historyResets copies the reset counts.
func (s *Syncer) historyResets() map[string]uint64 {
	s.hist.mu.Lock()
	defer s.hist.mu.Unlock()
	return maps.Clone(s.hist.counts)
}

// discardSnapshot is the watch loop's side of a reset: the snapshot keeps
// answering, marked stale, until the full load (after spreadLoad's jittered
// wait, as a restore hits a whole fleet at once) replaces it.
func (s *Syncer) discardSnapshot() {
	s.ready.Store(false)
	s.cfg.Store.markStale()
	s.cfg.Log.Info("loading the registry in full after a history reset", zap.String("reason", s.resetPending()))
}

// markStale republishes the current snapshot marked stale: still served,
// no longer confirmed by etcd.
func (s *Store) markStale() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if old == nil || old.Stale {
		return
	}
	next := *old
	next.Stale = true
	s.snap.Store(&next)
	s.notify(old, &next, nil)
}

// checkBehind resets when cur, etcd's revision from a linearizable read, is
// behind rev, the snapshot's revision read before that request was sent:
// etcd lost history the snapshot holds. The snapshot's revision read after
// the answer would not do: the watch (on another goroutine than the
// watchdog's) may have applied writes made since the read, and a snapshot
// ahead of a revision etcd reported a moment earlier is no reset.
func (s *Syncer) checkBehind(cur, rev int64) error {
	if cur < rev {
		return s.historyReset(ResetRevisionBehind, fmt.Sprintf("etcd is at revision %d, the snapshot at %d", cur, rev))
	}
	return nil
}

// checkHistory verifies, before a watch continues the snapshot from its
// revision, that etcd's history is the snapshot's (see the top of this
// file). Errors other than a reset mean etcd did not answer.
func (s *Syncer) checkHistory(ctx context.Context) error {
	snap := s.cfg.Store.Snapshot()
	if snap == nil {
		return nil
	}
	// Bounded like the watch's silence: a hung member must not hold the
	// watch up for long (the next attempt may reach another).
	rctx, cancel := context.WithTimeout(ctx, s.cfg.StallTimeout)
	defer cancel()
	snapRev := s.cfg.Store.Revision()
	resp, err := s.cfg.Client.Get(rctx, s.cfg.Prefix, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("read etcd's revision: %w", err)
	}
	s.contact()
	if err := s.noteCluster(resp.Header.ClusterId); err != nil {
		return err
	}
	if err := s.checkBehind(resp.Header.Revision, snapRev); err != nil {
		return err
	}
	s.hist.mu.Lock()
	lost := s.hist.lost
	s.hist.mu.Unlock()
	for _, w := range []Witness{lost, snap.Witness()} {
		if w.ModRevision == 0 {
			continue
		}
		if err := s.verifyWitness(rctx, w); err != nil {
			return err
		}
	}
	s.hist.mu.Lock()
	if s.hist.lost == lost {
		s.hist.lost = Witness{}
	}
	s.hist.mu.Unlock()
	return nil
}

// verifyWitness reads w's key at w's revision and resets if etcd holds
// something else there. Once that revision is compacted the key's current
// value still tells when it was last written at w's revision (or, impossibly
// in the same history, before it).
func (s *Syncer) verifyWitness(ctx context.Context, w Witness) error {
	resp, err := s.cfg.Client.Get(ctx, w.Key, clientv3.WithRev(w.ModRevision))
	compacted := errors.Is(err, rpctypes.ErrCompacted)
	switch {
	case errors.Is(err, rpctypes.ErrFutureRev):
		return s.historyReset(ResetFutureRevision, fmt.Sprintf("etcd has no revision %d yet, at which the snapshot saw %s written", w.ModRevision, w.Key))
	case compacted:
		resp, err = s.cfg.Client.Get(ctx, w.Key)
	}
	if err != nil {
		return fmt.Errorf("read %s at revision %d: %w", w.Key, w.ModRevision, err)
	}
	s.contact()
	if len(resp.Kvs) == 0 {
		if compacted {
			return nil // deleted since; nothing left to compare
		}
		return s.historyReset(ResetDiverged, fmt.Sprintf("%s, which the snapshot saw written at revision %d, does not exist there in etcd", w.Key, w.ModRevision))
	}
	kv := resp.Kvs[0]
	switch {
	case compacted && kv.ModRevision > w.ModRevision:
		return nil // written again since; cannot compare
	case kv.ModRevision != w.ModRevision:
		return s.historyReset(ResetDiverged, fmt.Sprintf("etcd says %s was last written at revision %d before revision %d, where the snapshot saw it written", w.Key, kv.ModRevision, w.ModRevision))
	case hashValue(kv.Value) != w.Hash:
		return s.historyReset(ResetDiverged, fmt.Sprintf("%s holds another value at revision %d in etcd than the snapshot saw", w.Key, w.ModRevision))
	}
	return nil
}

// resetOnFutureRevision turns a read refused as a future revision into a
// history reset; other errors are returned as they are.
func (s *Syncer) resetOnFutureRevision(err error, rev int64) error {
	if errors.Is(err, rpctypes.ErrFutureRev) {
		return s.historyReset(ResetFutureRevision, fmt.Sprintf("etcd refused a read at the snapshot's revision %d as a future revision", rev))
	}
	return err
}

// watchChecked checks etcd's history, then watches from the snapshot's next
// revision until the watch fails or the client's connection to etcd drops.
// The client resumes a watch by itself after a reconnect, which would skip
// the check, so the connection is followed and the watch stopped first.
//
// The check is skipped when it already passed for this very snapshot
// (revision and witness) and the connection has not dropped since: nothing
// can have changed, and the two reads would otherwise shift clientv3's
// round-robin picker in step with the members, so that after a hung member
// every new watch could land on it again.
func (s *Syncer) watchChecked(ctx context.Context) error {
	s.hist.follow.Do(func() { go s.followConn(ctx) })
	snap := s.cfg.Store.Snapshot()
	s.hist.mu.Lock()
	drops := s.hist.drops
	v := s.hist.verified
	done := snap != nil && v.ok && v.rev == snap.Revision && v.w == snap.Witness() && v.drops == drops && s.hist.lost.ModRevision == 0
	s.hist.mu.Unlock()
	if !done {
		if err := s.checkHistory(ctx); err != nil {
			return err
		}
		if snap != nil {
			s.hist.mu.Lock()
			s.hist.verified = verifiedState{ok: true, rev: snap.Revision, w: snap.Witness(), drops: drops}
			s.hist.mu.Unlock()
		}
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.hist.mu.Lock()
	dropped := s.hist.drops != drops
	s.hist.cancelWatch = cancel
	s.hist.mu.Unlock()
	defer func() {
		s.hist.mu.Lock()
		s.hist.cancelWatch = nil
		s.hist.mu.Unlock()
	}()
	if dropped {
		return fmt.Errorf("%w while checking etcd's history", errConnLost)
	}
	// Watch returns only once etcd confirmed the watch (clientv3's watcher
	// and internal/etcdwatch alike); a member that hangs with its
	// connection open never does, and no watchdog runs before Watch
	// returns. Give up after StallTimeout without an answer. The answer
	// is a response on the watch, not any contact with etcd: a reconcile
	// that was running when the watch restarted reads pages meanwhile, and
	// taking those for the confirmation left the watch hung for good.
	heard := s.watchResponses.Load()
	created := s.clock.AfterFunc(s.cfg.StallTimeout, func() {
		if s.watchResponses.Load() == heard {
			cancel(fmt.Errorf("%w: etcd did not confirm the watch within %s", errStalled, s.cfg.StallTimeout))
		}
	})
	defer created.Stop()
	err := s.watch(wctx, s.cfg.Store.Revision()+1)
	if cause := context.Cause(wctx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// followConn runs for the syncer's life. When the client's connection
// leaves the ready state after having been ready, it counts a drop, keeps
// the snapshot's witness of that moment (no event of a reconnected etcd can
// be in it yet) and stops the running watch.
func (s *Syncer) followConn(ctx context.Context) {
	c, ok := s.cfg.Client.(interface{ ActiveConnection() *grpc.ClientConn })
	if !ok {
		return // a client without a connection to follow (a test's fake)
	}
	conn := c.ActiveConnection()
	state := conn.GetState()
	wasReady := false
	for {
		if state == connectivity.Ready {
			wasReady = true
		} else if wasReady {
			wasReady = false
			var w Witness
			if snap := s.cfg.Store.Snapshot(); snap != nil {
				w = snap.Witness()
			}
			s.hist.mu.Lock()
			s.hist.drops++
			if s.hist.lost.ModRevision == 0 {
				s.hist.lost = w
			}
			cancel := s.hist.cancelWatch
			s.hist.mu.Unlock()
			if cancel != nil {
				cancel(fmt.Errorf("%w (%s)", errConnLost, state))
			}
		}
		if !conn.WaitForStateChange(ctx, state) {
			return
		}
		state = conn.GetState()
	}
}

// connect makes the etcd client with cfg.Connect unless cfg.Client is set,
// retrying with backoff until it succeeds or ctx ends. Making a client may
// talk to etcd (it fetches an auth token with --etcd-user), so it runs here,
// while the store already answers from the local copy.
func (s *Syncer) connect(ctx context.Context) error {
	defer close(s.hist.client)
	if s.cfg.Client != nil {
		return nil
	}
	if s.cfg.Connect == nil {
		return errors.New("registry: SyncerConfig needs Client or Connect")
	}
	backoff := 250 * time.Millisecond
	for {
		cli, err := s.cfg.Connect(ctx)
		if err == nil {
			if ctx.Err() != nil {
				cli.Close()
				return ctx.Err()
			}
			s.cfg.Client, s.hist.own = cli, true
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.fail("client", err)
		if !s.sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Client waits until the syncer has its etcd client and returns it; nil
// when ctx ends first or Run ended without one.
func (s *Syncer) Client(ctx context.Context) Etcd {
	select {
	case <-s.hist.client:
		return s.cfg.Client
	case <-ctx.Done():
		return nil
	}
}

// closeClient closes the client Run made.
func (s *Syncer) closeClient() {
	if s.hist.own && s.cfg.Client != nil {
		_ = s.cfg.Client.Close()
	}
}
