package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Knowing that a watch is alive and current takes a word from etcd. Talking
// to etcd directly, the watch asks for a progress notification
// (RequestProgress) and etcd answers on the watch stream. etcd's gRPC proxy
// does not forward those requests (3.4 and 3.7 alike: it drops them), so
// behind a proxy a quiet watch hears nothing, however long it runs — and
// etcd's revision moves on with every write outside the prefix. The
// watchdog below uses progress notifications while they are answered and
// otherwise asks etcd whether anything under the prefix changed since the
// snapshot's revision (prefixUnchangedSince), which needs only ordinary
// reads, which the proxy forwards.

// maxQuietCheck bounds how far apart the prefix checks of a quiet watch
// behind a proxy drift (they back off from StallTimeout while each finds
// nothing missed, for the life of the watch): each costs etcd a walk of
// the prefix's index, about 2 µs a key (docs/proxy.md). It matches etcd's
// default interval of unasked progress notifications, which the proxy
// forwards; a cluster set to send those more often than StallTimeout makes
// the checks unnecessary.
const maxQuietCheck = 10 * time.Minute

// watchdog decides, for one watch, when the snapshot is current and when the
// watch has stalled. It runs in its own goroutine (run), beside the event
// loop (Syncer.watch), which never waits for etcd: every request to etcd
// the watchdog needs — its revision, a progress request, a check of the
// prefix — is made here. The event loop tells it what it received through
// the atomics below and the created channel; the watchdog moves the store
// only forward (Store.confirm) and ends the watch by cancelling its
// context with the reason.
type watchdog struct {
	s *Syncer

	// Set by the event loop. heardAt and progressAt are when (on the
	// syncer's clock, unix nanoseconds) the watch last delivered a
	// response and a progress notification; createdCh says the watch was
	// created; catchUp is etcd's revision when it was, if the watch had
	// history to replay: applying it means the snapshot is current.
	heardAt    atomic.Int64
	progressAt atomic.Int64
	createdCh  chan struct{}
	catchUp    atomic.Int64

	// The rest is the watchdog goroutine's own.

	// alive is when a check last proved that nothing was missed;
	// heardSeen the last heardAt looked at, progressSeen the last
	// progressAt.
	alive        time.Time
	heardSeen    int64
	progressSeen int64
	// progressAnswered records that etcd answered a progress request on
	// this watch: the watch talks to etcd, not to a proxy.
	progressAnswered bool
	// unordered is set when etcd may answer a progress request ahead of
	// events still queued for the watch (progressOrdered): then progress
	// is never requested, as behind a proxy.
	unordered bool
	// progressAsked counts progress requests sent while none was answered;
	// after a few, the watch is taken to be behind a proxy and stops
	// asking (the proxy logs each one it drops as an error).
	progressAsked int
	// askedAt is when progress was last requested.
	askedAt time.Time
	// quietLimit is how long the watch may be quiet before the prefix is
	// checked: StallTimeout, doubling (to maxQuietCheck) with every check
	// that finds nothing missed. Events do not reset it: in a registry
	// written every minute or so, a check after every event would cost a
	// fleet more than it proves.
	quietLimit time.Duration
	// suspect is the revision at which a prefix check found changes the
	// watch had not delivered, at suspectAt; a check a stall timeout later
	// finding the same, with nothing heard meanwhile, tears the watch down.
	suspect   int64
	suspectAt time.Time
}

func newWatchdog(s *Syncer) *watchdog {
	return &watchdog{s: s, alive: s.clock.Now(), quietLimit: s.cfg.StallTimeout, createdCh: make(chan struct{}, 1)}
}

// heard records a response on the watch (event loop).
func (w *watchdog) heard() { w.heardAt.Store(w.s.clock.Now().UnixNano()) }

// progress records a progress notification (event loop). One that comes
// soon after a request answers it; etcd also sends them unasked (every 10
// minutes by default), and the proxy forwards those.
func (w *watchdog) progress() { w.progressAt.Store(w.s.clock.Now().UnixNano()) }

// created tells the watchdog the watch was created (event loop).
func (w *watchdog) created() {
	select {
	case w.createdCh <- struct{}{}:
	default:
	}
}

// applied tells that the events up to rev were applied (event loop): the
// snapshot is current once they reach catchUp.
func (w *watchdog) applied(rev int64) {
	if c := w.catchUp.Load(); c != 0 && rev >= c && w.catchUp.CompareAndSwap(c, 0) {
		w.s.markReady(0)
	}
}

// run is the watchdog's goroutine: it checks once the watch is created and
// then every ProgressInterval, until ctx ends or it finds the watch
// stalled, when it cancels the watch with the reason.
func (w *watchdog) run(ctx context.Context, stop context.CancelCauseFunc) {
	t := w.s.clock.NewTicker(w.s.cfg.ProgressInterval)
	defer t.Stop()
	// Nothing is checked before etcd confirms the watch: a check's read
	// could prove the snapshot current with no watch to keep it so.
	// (watchChecked's deadline for the confirmation counts responses on
	// the watch, so reads cannot hide an unconfirmed one.) clientv3's and
	// etcdwatch's Watch return only once etcd confirmed; a Watcher that
	// returns earlier (tests' fakes) must not change that.
	created := false
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-w.createdCh:
			if !created {
				w.unordered = !w.s.progressOrdered(ctx)
			}
			created = true
			err = w.onCreated(ctx)
		case <-t.C():
			if !created {
				continue
			}
			err = w.tick(ctx)
			if w.s.watchdogTicked != nil {
				w.s.watchdogTicked(err)
			}
		}
		if err != nil {
			stop(err)
			return
		}
	}
}

// onCreated reads etcd's revision once the watch runs. The snapshot is
// current if it has reached that revision already; otherwise the watch
// has history to replay, and the snapshot is current once the events up to
// it are applied (or a progress notification comes, which etcd sends only
// once everything before it was delivered).
func (w *watchdog) onCreated(ctx context.Context) error {
	s := w.s
	snapRev := s.cfg.Store.Revision()
	cur, err := s.etcdRevision(ctx)
	if err != nil {
		return nil // the ticks ask again
	}
	if err := s.checkBehind(cur, snapRev); err != nil {
		return err
	}
	if cur <= s.cfg.Store.Revision() {
		s.markReady(0)
		return nil
	}
	w.catchUp.Store(cur)
	// The event loop may have applied them meanwhile.
	if s.cfg.Store.Revision() >= cur && w.catchUp.CompareAndSwap(cur, 0) {
		s.markReady(0)
	}
	return nil
}

// observe takes in what the event loop recorded since the last look and
// returns how long the watch has been quiet.
func (w *watchdog) observe() time.Duration {
	s := w.s
	if h := w.heardAt.Load(); h > w.heardSeen {
		w.heardSeen = h
		w.suspect = 0
	}
	if p := w.progressAt.Load(); p > w.progressSeen {
		w.progressSeen = p
		if asked := w.askedAt.UnixNano(); !w.askedAt.IsZero() && p > asked-int64(s.cfg.ProgressInterval) && p < asked+int64(s.cfg.ProgressInterval) {
			w.progressAnswered = true
		}
	}
	last := w.alive
	if h := time.Unix(0, w.heardSeen); w.heardSeen != 0 && h.After(last) {
		last = h
	}
	return s.since(last)
}

// proved records that a check proved the watch missed nothing.
func (w *watchdog) proved() {
	w.alive = w.s.clock.Now()
	w.suspect = 0
}

// askProgress requests a progress notification, unless the watch looks to
// be behind a proxy: three requests went unanswered although etcd had moved
// past the snapshot (a proxy logs each request it drops as an error).
func (w *watchdog) askProgress(ctx context.Context) {
	if w.unordered {
		return
	}
	if !w.progressAnswered {
		if w.progressAsked >= 3 {
			return
		}
		w.progressAsked++
	}
	w.askedAt = w.s.clock.Now()
	rctx, cancel := context.WithTimeout(ctx, w.s.cfg.ProgressInterval)
	_ = w.s.cfg.Client.RequestProgress(rctx)
	cancel()
}

// tick runs every ProgressInterval. It returns an error when the watch
// must be torn down.
func (w *watchdog) tick(ctx context.Context) error {
	s := w.s
	quiet := w.observe()
	if s.ready.Load() && quiet <= s.cfg.ProgressInterval {
		// The watch just spoke. Talking to etcd, keep asking it, so that
		// silence means something.
		if w.progressAnswered {
			w.askProgress(ctx)
		}
		return nil
	}
	// Not ready yet, or quiet: what does etcd say? A read of one key
	// costs etcd next to nothing and keeps LastContact fresh.
	snapRev := s.cfg.Store.Revision()
	cur, err := s.etcdRevision(ctx)
	if err != nil {
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s, and etcd did not answer: %v", errStalled, quiet.Round(time.Second), err)
		}
		return nil
	}
	if err := s.checkBehind(cur, snapRev); err != nil {
		return err // etcd lost history the snapshot holds (restore.go)
	}
	if cur <= s.cfg.Store.Revision() {
		// Nothing at all was written since the snapshot's revision (etcd
		// sends no progress notification then, proxy or not).
		w.proved()
		s.markReady(0)
		return nil
	}
	if w.progressAnswered {
		// Talking to etcd, which answers progress requests: silence past
		// the stall timeout while etcd moved on is a stuck watch.
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s while etcd moved on to revision %d", errStalled, quiet.Round(time.Second), cur)
		}
		w.askProgress(ctx)
		return nil
	}
	w.askProgress(ctx)
	if w.suspect == 0 && quiet <= w.quietLimit {
		return nil
	}
	if w.suspect != 0 && s.since(w.suspectAt) < s.cfg.StallTimeout {
		return nil // changes were seen; give the watch a stall timeout to deliver them
	}
	// Behind a proxy (or before etcd answered a progress request): ask
	// etcd whether anything under the prefix changed since a revision the
	// store has applied (the one its key count is for).
	rev, n := s.keys.get()
	if n < 0 {
		rev = s.cfg.Store.Revision()
	}
	s.prefixChecks.Add(1)
	unchanged, now, err := s.prefixUnchangedSince(ctx, rev)
	why := "keys under the prefix changed after revision %d"
	switch {
	case err != nil && !errors.Is(err, rpctypes.ErrCompacted):
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s, and etcd did not answer a check of the prefix: %v", errStalled, quiet.Round(time.Second), err)
		}
		return nil
	case err != nil:
		// The revision was compacted, and the syncer has no key count of
		// its own: whether something was deleted since cannot be told.
		// Treat it as a change not delivered.
		why = "revision %d was compacted, so the prefix cannot be compared with it"
	case unchanged:
		// Everything under the prefix is as at rev: the snapshot is etcd's
		// state at now, as a progress notification would have said. The
		// store moves to now only if the watch has not taken it further
		// meanwhile (Store.confirm).
		w.proved()
		w.quietLimit = min(2*w.quietLimit, max(maxQuietCheck, s.cfg.StallTimeout))
		s.keys.advance(now)
		s.markReady(now)
		return nil
	}
	if w.suspect == rev {
		// Nothing heard for a stall timeout since the changes were seen.
		// The key count may be what is wrong; the next watch counts anew.
		s.keys.forget()
		return fmt.Errorf("%w: "+why+", and the watch delivered nothing for %s",
			errStalled, rev, quiet.Round(time.Second))
	}
	w.suspect, w.suspectAt = rev, s.clock.Now()
	return nil
}

// prefixUnchangedSince reports whether the keys under the prefix are now
// exactly as they were at revision rev, the snapshot's — none written
// since, none deleted — and returns the revision "now" is. Every key that
// exists now and was last written at or before rev existed at rev with the
// same value, so the keys now are a subset of those at rev; with as many
// keys as at rev they are the same. The count at rev is the syncer's
// (kept from the load and the events), or else read from etcd at rev, in
// one transaction with the read of now. etcd walks the prefix's index for
// these reads (3.4 reads the values too): the checks are kept rare (see
// watchdog.quietLimit).
func (s *Syncer) prefixUnchangedSince(ctx context.Context, rev int64) (bool, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	last := clientv3.OpGet(s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
	ops := []clientv3.Op{last}
	count, known := s.keys.known(rev)
	if !known {
		ops = append(ops, clientv3.OpGet(s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev)))
	}
	resp, err := s.cfg.Client.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return false, 0, err
	}
	s.contact()
	now := resp.Responses[0].GetResponseRange()
	if now == nil || len(resp.Responses) != len(ops) {
		return false, 0, fmt.Errorf("prefix check: etcd answered without the range responses asked for")
	}
	if len(ops) > 1 {
		then := resp.Responses[1].GetResponseRange()
		if then == nil {
			return false, 0, fmt.Errorf("prefix check: etcd answered without the count at revision %d", rev)
		}
		count = then.Count
		s.keys.learn(rev, count)
	}
	if len(now.Kvs) > 0 && now.Kvs[0].ModRevision > rev {
		return false, resp.Header.Revision, nil
	}
	return now.Count == count, resp.Header.Revision, nil
}

// keyDelta is what an applied event changes the key count by: a put of
// version 1 created the key, a delete removed it.
func keyDelta(e *clientv3.Event) int64 {
	switch {
	case e.Type == mvccpb.DELETE:
		return -1
	case e.Kv.Version == 1:
		return 1
	}
	return 0
}

// keyCount is the number of keys under the prefix at revision rev, one the
// store has applied (n < 0: not known). The event loop keeps it in step
// with the events it applies; the watchdog reads it, learns it from etcd
// when not known, and forgets it when it may be wrong.
type keyCount struct {
	mu  sync.Mutex
	rev int64
	n   int64
}

func (k *keyCount) get() (rev, n int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rev, k.n
}

// set records n keys at rev (a full load).
func (k *keyCount) set(rev, n int64) {
	k.mu.Lock()
	k.rev, k.n = rev, n
	k.mu.Unlock()
}

// add records events applied up to rev that changed the count by delta.
func (k *keyCount) add(rev, delta int64) {
	k.mu.Lock()
	if k.n >= 0 {
		k.n += delta
	}
	k.rev = max(k.rev, rev)
	k.mu.Unlock()
}

// advance records that nothing changed up to rev (a progress notification).
func (k *keyCount) advance(rev int64) { k.add(rev, 0) }

// learn records a count read from etcd at rev, unless events applied
// since made rev an old revision.
func (k *keyCount) learn(rev, n int64) {
	k.mu.Lock()
	if k.n < 0 && rev >= k.rev {
		k.rev, k.n = rev, n
	}
	k.mu.Unlock()
}

// known is the count at rev, if known.
func (k *keyCount) known(rev int64) (int64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n, k.n >= 0 && k.rev == rev
}

func (k *keyCount) forget() {
	k.mu.Lock()
	k.n = -1
	k.mu.Unlock()
}

// stale reports whether an event of revision evRev is at or below the
// snapshot's revision: already applied, or covered by a check that proved
// the prefix unchanged up to it. A watch the proxy coalesced into one that
// started earlier may deliver those; they are skipped.
func stale(snapRev, evRev int64) bool { return evRev <= snapRev }

// progressOrdered reports whether etcd sends a requested progress
// notification only after every event queued before it. Before etcd's fix
// of its issue 15220 (3.4.25 and 3.5.8) a requested notification could
// overtake queued events; the event loop takes a notification at revision
// R as everything up to R delivered and moves the snapshot to R, so the
// events it overtook would be skipped as already applied until a
// reconcile repaired the drift. The version is asked of every endpoint at
// once (Maintenance Status; a gRPC proxy forwards it to a member); one
// that answers with an affected version makes it false, and the watchdog
// then never requests progress (as behind a proxy, where requests are dropped
// anyway). etcd's unasked, periodic notifications travel with the events
// and are used as before. A client without Status (tests' fakes) or
// endpoints that do not answer leave it true, as before this check.
func (s *Syncer) progressOrdered(ctx context.Context) bool {
	c, ok := s.cfg.Client.(interface {
		Endpoints() []string
		Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	})
	if !ok {
		return true
	}
	// All endpoints at once, within one progress interval: an endpoint
	// that is down must not hold up readiness for long.
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ProgressInterval)
	defer cancel()
	eps := c.Endpoints()
	versions := make([]string, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			if resp, err := c.Status(rctx, ep); err == nil && resp != nil {
				versions[i] = resp.Version
			}
		})
	}
	wg.Wait()
	for i, v := range versions {
		if v == "" || orderedProgress(v) {
			continue
		}
		if s.unorderedLogged.CompareAndSwap(false, true) {
			s.cfg.Log.Warn("this etcd may answer a progress request ahead of queued events (etcd issue 15220, fixed in 3.4.25 and 3.5.8), so the watchdog checks the prefix with reads instead; upgrade etcd to save those reads",
				zap.String("endpoint", eps[i]), zap.String("version", v))
		}
		return false
	}
	return true
}

// orderedProgress reports whether etcd version v (as Status gives it:
// "3.4.23", "3.5.0-alpha.0") orders requested progress notifications after
// queued events. A version it cannot read counts as ordered.
func orderedProgress(v string) bool {
	v, _, _ = strings.Cut(v, "-")
	var major, minor, patch int
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); n != 3 {
		return true
	}
	switch {
	case major != 3:
		return major > 3
	case minor < 4:
		return false
	case minor == 4:
		return patch >= 25
	case minor == 5:
		return patch >= 8
	}
	return true
}
