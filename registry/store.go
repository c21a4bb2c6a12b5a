package registry

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Store holds the published Snapshot and the writer-side state behind it.
// Readers call Snapshot, which is one atomic load; Apply and Replace are
// called by one feeder at a time (the etcd Syncer, or tests) and never block
// readers.
type Store struct {
	log *zap.Logger
	now func() time.Time

	snap atomic.Pointer[Snapshot]

	mu        sync.Mutex // serialises feeders; readers never take it
	st        *state
	gen       uint64
	listeners []func(old, new *Snapshot, evs []Event)
	recent    recentInvalid // the last few invalid keys (recentinvalid.go)
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithLogger sets the logger for skipped values.
func WithLogger(l *zap.Logger) StoreOption { return func(s *Store) { s.log = l } }

// WithClock sets the clock used for SOA serials (tests).
func WithClock(now func() time.Time) StoreOption { return func(s *Store) { s.now = now } }

// WithListener registers a function called after each published change,
// with the events that caused it (nil for a full load). It runs on the
// feeder's goroutine and must be quick, and must not keep evs (the slice
// is reused). Several may be registered.
func WithListener(fn func(old, new *Snapshot, evs []Event)) StoreOption {
	return func(s *Store) { s.listeners = append(s.listeners, fn) }
}

// NewStore makes an empty Store for keys under prefix. Snapshot returns nil
// until the first Replace.
func NewStore(prefix string, opts ...StoreOption) *Store {
	s := &Store{log: zap.NewNop(), now: time.Now, st: newState(prefix)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Snapshot returns the current snapshot, or nil before the first load.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// Replace loads the whole registry as it was at revision rev, replacing
// whatever the store held. Readers keep the old snapshot until the new one
// is complete.
func (s *Store) Replace(rev int64, kvs []Event) {
	l := s.BeginLoad()
	for _, kv := range kvs {
		l.Add(kv)
	}
	l.Commit(rev)
}

// Load is a full load in progress: entries are added page by page (so the
// raw pages need not all be held at once) and the new snapshot replaces the
// current one at Commit. Until then readers see the old snapshot.
type Load struct {
	s  *Store
	st *state
}

// BeginLoad starts a full load. Only one feeder may use the store at a time.
// Org claims are dated from the snapshot being replaced where the keys show
// that still holds (see dateClaim).
func (s *Store) BeginLoad() *Load {
	st := newState(s.st.prefix)
	st.estimated = map[string]bool{}
	if prev := s.snap.Load(); prev != nil {
		st.prevClaim = prev.claimOf
	}
	return &Load{s: s, st: st}
}

// Add records one key of the load.
func (l *Load) Add(ev Event) { l.st.apply(ev) }

// ResolveClaims dates exactly, from etcd's history, the claims that the
// load could only bound from above and that compete with another org's
// claim on the same network: getAt reads a key as it was at a revision
// (found false when it did not exist then). Claims on networks only one org
// names are left alone: nothing competes with them, and any later claim is
// later than the load. Call it after the last Add, before Commit.
func (l *Load) ResolveClaims(getAt func(key string, rev int64) (ev Event, found bool, err error)) {
	st := l.st
	for name := range st.estimated {
		o := st.orgs[name]
		if o == nil || o.value == nil {
			continue
		}
		nk := netKeyOf(o.value.Network.Addr())
		if len(st.claims[nk]) < 2 {
			continue
		}
		o.claim.Rev = walkClaim(st.prefix, name, o.claim, o.value.Network, getAt)
		st.claims[nk][name] = o.claim.Rev
	}
	clear(st.estimated)
}

// Commit publishes the loaded registry as the snapshot at revision rev.
func (l *Load) Commit(rev int64) { l.commit(rev, false) }

// commit publishes the load; stale marks a snapshot etcd has not confirmed
// (one read from the local copy).
func (l *Load) commit(rev int64, stale bool) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := l.st
	// Mark every org so the new snapshot is built from nothing.
	clear(st.dirty)
	for name := range st.orgs {
		st.markOrg(name).all = true
	}
	st.globalDirty = true
	st.serialFloor = s.snap.Load()
	next := st.publish(emptySnapshot(), rev, &s.gen, s.now())
	next.Stale = stale
	if prev := s.snap.Load(); prev != nil {
		next.dataVersion = prev.dataVersion
	}
	next.dataVersion++
	st.serialFloor = nil
	st.prevClaim, st.estimated = nil, nil // the watch dates claims itself
	s.st = st
	s.logInvalid()
	old := s.snap.Swap(next)
	s.notify(old, next, nil)
}

// Apply applies the events of one etcd revision range ending at rev. The
// work is proportional to the apps and orgs the events touch.
func (s *Store) Apply(rev int64, evs []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if old == nil {
		old = emptySnapshot()
	}
	for _, ev := range evs {
		s.st.apply(ev)
	}
	next := s.st.publish(old, rev, &s.gen, s.now())
	if len(evs) > 0 {
		next.dataVersion++
	}
	s.logInvalid()
	s.snap.Store(next)
	s.notify(old, next, evs)
}

// confirm publishes the snapshot as confirmed by etcd up to revision rev:
// at rev if that is past its own revision, and no longer marked stale. It
// never moves the revision back, so the syncer's watchdog may call it while
// the watch applies later events. Nothing is published when the snapshot is
// already unmarked at or past rev.
func (s *Store) confirm(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if old == nil || (rev <= old.Revision && !old.Stale) {
		return
	}
	next := s.st.publish(old, max(rev, old.Revision), &s.gen, s.now())
	s.logInvalid()
	s.snap.Store(next)
	s.notify(old, next, nil)
}

func (s *Store) notify(old, next *Snapshot, evs []Event) {
	for _, fn := range s.listeners {
		fn(old, next, evs)
	}
}

// Revision is the etcd revision of the current snapshot, or 0 before the first load.
func (s *Store) Revision() int64 {
	if snap := s.snap.Load(); snap != nil {
		return snap.Revision
	}
	return 0
}

// InvalidCount is how many keys currently hold a value that is not served.
func (s *Store) InvalidCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.st.invalid)
}

// Invalid returns each key whose value is not served, with the reason.
func (s *Store) Invalid() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.st.invalid))
	for k, v := range s.st.invalid {
		out[k] = v
	}
	return out
}

// logInvalid logs each key that became invalid in the last batch, once.
func (s *Store) logInvalid() {
	keys := s.st.newInvalid
	s.st.newInvalid = s.st.newInvalid[:0]
	sort.Strings(keys)
	s.recent.note(keys, s.st.invalid, s.now())
	for i, k := range keys {
		if i > 0 && keys[i-1] == k {
			continue
		}
		if reason, ok := s.st.invalid[k]; ok {
			s.log.Warn("registry value skipped", zap.String("key", k), zap.String("reason", reason))
		}
	}
}
