package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// Unit tests of the watchdog's decisions (progress.go) and of the split
// between the event loop and the watchdog, on a fake clock and a fake etcd:
// no etcd process, no waiting for wall time. The real-etcd tests in
// syncer_test.go and proxy_test.go cover the same ground end to end.

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	ch      chan time.Time
	at      time.Time
	period  time.Duration // tickers
	f       func()        // AfterFunc
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d, period time.Duration, f func()) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), period: period, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) Timer { return c.add(d, 0, nil) }
func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	return fakeTicker{c.add(d, d, nil)}
}
func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer { return c.add(d, 0, f) }

// Advance moves the clock on by d, firing every timer and tick due on the
// way, in order (a ticker's channel holds one tick, as time.Ticker's).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.now.Add(d)
	for {
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var t *fakeTimer
		for _, x := range c.timers {
			if !x.stopped && !x.at.After(end) {
				t = x
				break
			}
		}
		if t == nil {
			break
		}
		c.now = t.at
		if t.f != nil {
			go t.f()
		} else {
			select {
			case t.ch <- c.now:
			default:
			}
		}
		if t.period > 0 {
			t.at = t.at.Add(t.period)
		} else {
			t.stopped = true
		}
	}
	c.now = end
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (t fakeTicker) C() <-chan time.Time { return t.t.ch }
func (t fakeTicker) Stop()               { t.t.Stop() }

// stubEtcd is an etcd that holds no keys under the prefix but count of
// them (all last written at lastMod), at revision rev. Reads of its
// revision fail with getErr, or wait for block to close. Each read moves
// rev on by busy (writes elsewhere). It answers progress requests on the
// watch when answer is set.
type stubEtcd struct {
	clientv3.KV // Put, Delete, Compact, Do: not used by the syncer

	mu      sync.Mutex
	rev     int64
	busy    int64
	count   int64
	lastMod int64
	getErr  error
	block   chan struct{}
	answer  bool
	// Counts of requests; txnAt is the clock time of each prefix check,
	// duringTxn runs inside one (as etcd answers it).
	revReads, progressReqs int
	txnAt                  []time.Time
	clock                  *fakeClock
	duringTxn              func()
	// afterRevRead runs once a read of etcd's revision has its answer,
	// before the caller sees it (what etcd and the watch do meanwhile).
	afterRevRead func()
	watches      []chan clientv3.WatchResponse
}

func (f *stubEtcd) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{Revision: f.rev, ClusterId: 1}
}

func (f *stubEtcd) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	f.mu.Lock()
	countOnly := clientv3.OpGet(key, opts...).IsCountOnly()
	if countOnly {
		f.revReads++
	}
	block, err := f.block, f.getErr
	f.mu.Unlock()
	if countOnly && block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if countOnly && err != nil {
		return nil, err
	}
	f.mu.Lock()
	resp := &clientv3.GetResponse{Header: f.header(), Count: f.count}
	f.rev += f.busy
	after := f.afterRevRead
	f.mu.Unlock()
	if countOnly && after != nil {
		after()
	}
	return resp, nil
}

func (f *stubEtcd) Txn(ctx context.Context) clientv3.Txn { return &fakeTxn{f: f} }

type fakeTxn struct {
	f   *stubEtcd
	ops []clientv3.Op
}

func (t *fakeTxn) If(...clientv3.Cmp) clientv3.Txn      { return t }
func (t *fakeTxn) Else(...clientv3.Op) clientv3.Txn     { return t }
func (t *fakeTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.ops = ops; return t }

// Commit answers the prefix check: the last written key, and the count.
func (t *fakeTxn) Commit() (*clientv3.TxnResponse, error) {
	f := t.f
	if f.duringTxn != nil {
		f.duringTxn()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txnAt = append(f.txnAt, f.clock.Now())
	if f.getErr != nil {
		return nil, f.getErr
	}
	resp := &clientv3.TxnResponse{Header: f.header()}
	for range t.ops {
		r := &pb.RangeResponse{Count: f.count, Kvs: []*mvccpb.KeyValue{{Key: []byte(DefaultPrefix + "orgs/x"), ModRevision: f.lastMod}}}
		resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}})
	}
	f.rev += f.busy
	return resp, nil
}

func (f *stubEtcd) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan clientv3.WatchResponse, 16)
	f.watches = append(f.watches, ch)
	return ch
}

func (f *stubEtcd) RequestProgress(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progressReqs++
	if f.answer && len(f.watches) > 0 {
		f.watches[len(f.watches)-1] <- clientv3.WatchResponse{Header: f.header()}
	}
	return nil
}

func (f *stubEtcd) Close() error { return nil }

func (f *stubEtcd) set(fn func(f *stubEtcd)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *stubEtcd) stats() (revReads, progressReqs, txns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revReads, f.progressReqs, len(f.txnAt)
}

// watchdogOn is a syncer whose store holds an empty registry at revision
// 10, holding count keys, on a fake clock and fake etcd at revision etcdRev,
// with progress every second and a stall timeout of 3 s, and a watchdog
// for one watch that has just heard from etcd.
func watchdogOn(t *testing.T, etcdRev int64) (*Syncer, *watchdog, *stubEtcd, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	f := &stubEtcd{rev: etcdRev, count: 5, lastMod: 10, clock: clk}
	store := NewStore(DefaultPrefix)
	store.Replace(10, nil)
	s := NewSyncer(SyncerConfig{Client: f, Prefix: DefaultPrefix, Store: store, Clock: clk,
		ProgressInterval: time.Second, StallTimeout: 3 * time.Second})
	s.keys.set(10, 5)
	w := newWatchdog(s)
	w.heard()
	return s, w, f, clk
}

// TestWatchdogQuietChecksEtcd: a ready watch that spoke within the progress
// interval costs etcd nothing; a quiet one has etcd's revision read, and
// with nothing written since the snapshot it is proved current.
func TestWatchdogQuietChecksEtcd(t *testing.T) {
	s, w, f, clk := watchdogOn(t, 10)
	s.ready.Store(true)
	clk.Advance(time.Second)
	if err := w.tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r, p, x := f.stats(); r+p+x != 0 {
		t.Errorf("a watch that just spoke: %d revision reads, %d progress requests, %d prefix checks; want none", r, p, x)
	}
	clk.Advance(1500 * time.Millisecond)
	if err := w.tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r, _, x := f.stats(); r != 1 || x != 0 {
		t.Errorf("a quiet watch: %d revision reads, %d prefix checks; want 1, 0", r, x)
	}
	// Proved current: quiet again from now.
	if q := w.observe(); q != 0 || !s.Status().Ready {
		t.Errorf("after the check: quiet %v, ready %v; want 0, true", q, s.Status().Ready)
	}
}

// TestWatchdogStallAfterAnsweredProgress: talking to etcd, which answers
// progress requests, a watch silent while etcd moves on is torn down once
// the silence passes StallTimeout, not before, and without prefix checks.
func TestWatchdogStallAfterAnsweredProgress(t *testing.T) {
	s, w, f, clk := watchdogOn(t, 20)
	f.set(func(f *stubEtcd) { f.busy = 1 }) // etcd moves on
	clk.Advance(time.Second)
	if err := w.tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The event loop receives the answer.
	clk.Advance(100 * time.Millisecond)
	w.heard()
	w.progress()
	s.markReady(20)
	quietFrom := clk.Now()
	for i := 0; ; i++ {
		clk.Advance(time.Second)
		err := w.tick(t.Context())
		quiet := clk.Now().Sub(quietFrom)
		if err != nil {
			if !errors.Is(err, errStalled) || quiet <= 3*time.Second {
				t.Fatalf("after %v of silence: %v; want %v only past the 3s stall timeout", quiet, err, errStalled)
			}
			break
		}
		if i > 10 {
			t.Fatalf("no stall after %v of silence", quiet)
		}
	}
	if !w.progressAnswered {
		t.Error("the answered progress request was not noticed")
	}
	if _, p, x := f.stats(); x != 0 || p < 3 {
		t.Errorf("%d prefix checks, %d progress requests; want none, one a tick", x, p)
	}
}

// TestWatchdogProxyPrefixChecksBackOff: behind a proxy progress requests go
// unanswered; after three the watchdog stops asking, and a quiet watch has
// the prefix checked instead, first after StallTimeout, then at doubling
// intervals while each check finds nothing missed. Each check moves the
// snapshot to etcd's revision.
func TestWatchdogProxyPrefixChecksBackOff(t *testing.T) {
	s, w, f, clk := watchdogOn(t, 20)
	f.set(func(f *stubEtcd) { f.busy = 1 }) // writes elsewhere, all the time
	start := clk.Now()
	for range 60 {
		clk.Advance(time.Second)
		if err := w.tick(t.Context()); err != nil {
			t.Fatalf("at %v: %v", clk.Now().Sub(start), err)
		}
	}
	_, p, _ := f.stats()
	if p != 3 {
		t.Errorf("%d progress requests, want 3 (then taken for a proxy)", p)
	}
	var gaps []time.Duration
	last := start
	for _, at := range f.txnAt {
		gaps = append(gaps, at.Sub(last))
		last = at
	}
	want := []time.Duration{4 * time.Second, 7 * time.Second, 13 * time.Second, 25 * time.Second}
	if len(gaps) != len(want) {
		t.Fatalf("prefix checks %v apart, want %v", gaps, want)
	}
	for i := range want {
		if gaps[i] != want[i] {
			t.Errorf("prefix checks %v apart, want %v", gaps, want)
			break
		}
	}
	if rev := s.cfg.Store.Revision(); rev <= 20 || !s.Status().Ready {
		t.Errorf("snapshot at %d, ready %v: the checks should have moved it to etcd's revision", rev, s.Status().Ready)
	}
}

// TestWatchdogProxyUndeliveredChanges: a prefix check that finds changes
// the watch did not deliver gives the watch a stall timeout to deliver them,
// then tears it down.
func TestWatchdogProxyUndeliveredChanges(t *testing.T) {
	_, w, f, clk := watchdogOn(t, 20)
	f.set(func(f *stubEtcd) { f.lastMod = 15 })
	var seen, stall time.Duration
	start := clk.Now()
	for range 20 {
		clk.Advance(time.Second)
		err := w.tick(t.Context())
		if _, _, x := f.stats(); x == 1 && seen == 0 {
			seen = clk.Now().Sub(start)
		}
		if err != nil {
			if !errors.Is(err, errStalled) {
				t.Fatal(err)
			}
			stall = clk.Now().Sub(start)
			break
		}
	}
	if seen != 4*time.Second || stall != 7*time.Second {
		t.Errorf("changes seen at %v, stall at %v; want 4s (past the stall timeout) and 7s (a stall timeout later)", seen, stall)
	}
}

// TestWatchdogBehindSnapshotResets: etcd behind the snapshot's revision
// lost history the snapshot holds: a history reset, on a tick and when the
// watch is created.
func TestWatchdogBehindSnapshotResets(t *testing.T) {
	for _, created := range []bool{false, true} {
		s, w, _, clk := watchdogOn(t, 5)
		clk.Advance(2 * time.Second)
		var err error
		if created {
			err = w.onCreated(t.Context())
		} else {
			err = w.tick(t.Context())
		}
		if !errors.Is(err, errHistoryReset) || s.Status().Resetting != ResetRevisionBehind {
			t.Errorf("created %v: %v, resetting %q; want a history reset (%s)", created, err, s.Status().Resetting, ResetRevisionBehind)
		}
	}
}

// TestWatchdogNoResetForWritesAfterTheRead: etcd answers revision 20;
// before the watchdog compares, etcd takes a write and the watch (another
// goroutine) applies it at 25. A snapshot ahead of a revision etcd reported
// a moment earlier is no lost history: comparing with the snapshot's
// revision read after the answer made this a false history reset, and a
// full load, on every busy host.
func TestWatchdogNoResetForWritesAfterTheRead(t *testing.T) {
	for _, created := range []bool{false, true} {
		s, w, f, clk := watchdogOn(t, 20)
		f.afterRevRead = func() {
			s.cfg.Store.Apply(25, []Event{{Key: DefaultPrefix + "orgs/acme", Value: []byte(`{"network":"fdaa:0:18::/48"}`), CreateRevision: 25, ModRevision: 25, Version: 1}})
		}
		clk.Advance(2 * time.Second)
		var err error
		if created {
			err = w.onCreated(t.Context())
		} else {
			err = w.tick(t.Context())
		}
		if err != nil || s.Status().Resetting != "" {
			t.Errorf("created %v: %v, resetting %q; want no reset", created, err, s.Status().Resetting)
		}
	}
}

// TestWatchdogEtcdUnreachable: while etcd does not answer, the watch is
// kept until its silence passes StallTimeout.
func TestWatchdogEtcdUnreachable(t *testing.T) {
	_, w, f, clk := watchdogOn(t, 20)
	f.set(func(f *stubEtcd) { f.getErr = errors.New("connection refused") })
	start := clk.Now()
	for range 10 {
		clk.Advance(time.Second)
		if err := w.tick(t.Context()); err != nil {
			if q := clk.Now().Sub(start); !errors.Is(err, errStalled) || q != 4*time.Second {
				t.Errorf("stall after %v: %v; want %v after 4s (the first tick past the 3s stall timeout)", q, err, errStalled)
			}
			return
		}
	}
	t.Fatal("no stall with etcd unreachable")
}

// TestWatchdogCheckNeverMovesRevisionBack: a prefix check proves the
// snapshot current up to etcd's revision then; if the event loop applied a
// later event while the check was out, the store keeps that later revision.
func TestWatchdogCheckNeverMovesRevisionBack(t *testing.T) {
	s, w, f, clk := watchdogOn(t, 20)
	w.progressAsked = 3 // behind a proxy
	f.duringTxn = func() {
		s.cfg.Store.Apply(25, []Event{{Key: DefaultPrefix + "orgs/acme", Value: []byte(`{"network":"fdaa:0:18::/48"}`), CreateRevision: 25, ModRevision: 25, Version: 1}})
	}
	clk.Advance(4 * time.Second)
	if err := w.tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, x := f.stats(); x != 1 {
		t.Fatalf("%d prefix checks, want 1", x)
	}
	if rev := s.cfg.Store.Revision(); rev != 25 || s.cfg.Store.Snapshot().Org("acme") == nil {
		t.Errorf("store at revision %d after a check that read revision 20 while revision 25 was applied; want 25", rev)
	}
}

// fakeSyncer runs a syncer on fake etcd and a fake clock until the test
// ends, with every watchdog tick's verdict sent on ticks.
func fakeSyncer(t *testing.T, f *stubEtcd, clk *fakeClock) (*runningSyncer, chan error) {
	t.Helper()
	ticks := make(chan error, 100)
	cfg := SyncerConfig{Client: f, Prefix: DefaultPrefix, Store: NewStore(DefaultPrefix), Clock: clk,
		ProgressInterval: time.Second, StallTimeout: 3 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSyncer{Syncer: NewSyncer(cfg), cancel: cancel, done: make(chan error, 1)}
	r.watchdogTicked = func(err error) { ticks <- err }
	go func() { r.done <- r.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r, ticks
}

// watchOf waits for the syncer's n-th watch and returns its channel.
func (f *stubEtcd) watchOf(t *testing.T, n int) chan clientv3.WatchResponse {
	t.Helper()
	var ch chan clientv3.WatchResponse
	waitFor(t, "the watch", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.watches) >= n {
			ch = f.watches[n-1]
		}
		return ch != nil
	})
	return ch
}

// TestSyncerEventLoopNeverWaitsForEtcd: with etcd's reads hanging, the
// events of the watch are still applied at once; the watchdog, which made
// the read, waits alone.
func TestSyncerEventLoopNeverWaitsForEtcd(t *testing.T) {
	clk := newFakeClock()
	f := &stubEtcd{rev: 10, clock: clk}
	sy, _ := fakeSyncer(t, f, clk)
	wch := f.watchOf(t, 1)
	block := make(chan struct{})
	defer close(block)
	f.set(func(f *stubEtcd) { f.block = block })
	reads, _, _ := f.stats()
	clk.Advance(10 * time.Millisecond)
	wch <- clientv3.WatchResponse{Header: &pb.ResponseHeader{Revision: 10, ClusterId: 1}, Created: true}
	waitFor(t, "the watchdog's read of etcd's revision", func() bool { r, _, _ := f.stats(); return r > reads })
	wch <- clientv3.WatchResponse{Header: &pb.ResponseHeader{Revision: 11, ClusterId: 1}, Events: []*clientv3.Event{{
		Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(DefaultPrefix + "orgs/acme"), Value: []byte(`{"network":"fdaa:0:18::/48"}`),
			CreateRevision: 11, ModRevision: 11, Version: 1}}}}
	waitFor(t, "the event applied while etcd's read hangs", func() bool {
		snap := sy.cfg.Store.Snapshot()
		return snap.Revision == 11 && snap.Org("acme") != nil
	})
}

// readyFakeSyncer is a syncer on a stub etcd at revision 10 and a fake
// clock, its watch created and the syncer ready.
func readyFakeSyncer(t *testing.T) (*fakeClock, *stubEtcd, *runningSyncer, <-chan error) {
	t.Helper()
	clk := newFakeClock()
	f := &stubEtcd{rev: 10, clock: clk}
	sy, ticks := fakeSyncer(t, f, clk)
	wch := f.watchOf(t, 1)
	clk.Advance(10 * time.Millisecond)
	wch <- clientv3.WatchResponse{Header: &pb.ResponseHeader{Revision: 10, ClusterId: 1}, Created: true}
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	return clk, f, sy, ticks
}

// TestSyncerStallCancelsWatch: etcd stops answering after the watch is
// created and ready: the watchdog's ticks keep the watch while the silence
// is within StallTimeout, and its stall verdict ends the watch.
func TestSyncerStallCancelsWatch(t *testing.T) {
	clk, f, sy, ticks := readyFakeSyncer(t)
	f.set(func(f *stubEtcd) { f.getErr = errors.New("connection refused") })
	for i := 1; ; i++ {
		clk.Advance(time.Second)
		var err error
		select {
		case err = <-ticks:
		case <-time.After(waitTimeout):
			t.Fatalf("no watchdog tick %d", i)
		}
		if err == nil {
			if i > 3 {
				t.Fatalf("tick %d, %v after etcd's last answer: no stall", i, time.Duration(i)*time.Second)
			}
			if st := sy.Status(); st.WatchRestarts != 0 {
				t.Fatalf("tick %d: watch restarted before the stall timeout: %+v", i, st)
			}
			continue
		}
		if !errors.Is(err, errStalled) || i != 4 {
			t.Fatalf("tick %d: %v; want %v at tick 4, past the 3s stall timeout", i, err, errStalled)
		}
		break
	}
	waitFor(t, "the watch restarted", func() bool { return sy.Status().WatchRestarts == 1 })
	if st := sy.Status(); st.Ready {
		t.Errorf("ready after a stall: %+v", st)
	}
}

// TestSyncerQuietEtcdStaysReady is TestSyncerReadyWhenQuiet on a fake
// clock: nothing is written after the load, so etcd sends no progress
// notification; every tick over a hundred stall timeouts finds the syncer
// ready with its first watch, each quiet tick proving it with one read of
// etcd's revision.
func TestSyncerQuietEtcdStaysReady(t *testing.T) {
	clk, f, sy, ticks := readyFakeSyncer(t)
	reads, _, _ := f.stats()
	for i := 1; i <= 300; i++ {
		clk.Advance(time.Second)
		select {
		case err := <-ticks:
			if err != nil {
				t.Fatalf("tick %d: %v", i, err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no watchdog tick %d", i)
		}
		if st := sy.Status(); !st.Ready || st.WatchRestarts != 0 {
			t.Fatalf("tick %d on a quiet etcd: %+v", i, st)
		}
	}
	// Proved at every other tick: one quiet for no more than the progress
	// interval needs nothing, the next reads etcd's revision.
	if r, p, x := f.stats(); r-reads != 150 || p != 0 || x != 0 {
		t.Errorf("%d revision reads, %d progress requests, %d prefix checks over 300 ticks; want 150, 0, 0", r-reads, p, x)
	}
}

// hangingKV passes reads through to etcd, except that every read of etcd's
// revision (a count-only read) after the first hangs until its context ends.
type hangingKV struct {
	clientv3.KV
	countOnly atomic.Int32
}

func (k *hangingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if clientv3.OpGet(key, opts...).IsCountOnly() && k.countOnly.Add(1) > 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.KV.Get(ctx, key, opts...)
}

// TestSyncerEventsFlowWhileEtcdReadsHang, on real etcd: once the watch
// runs, every read of etcd's revision hangs (a slow member), each for up
// to a minute (the progress interval bounds it). The watch's events must
// still be applied at once: only the watchdog waits for those reads.
func TestSyncerEventsFlowWhileEtcdReadsHang(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	slow := e.Client(t)
	slow.KV = &hangingKV{KV: slow.KV}
	s := NewStore(DefaultPrefix)
	startSyncer(t, SyncerConfig{Client: slow, Store: s, ProgressInterval: time.Minute, StallTimeout: 5 * time.Minute})
	waitFor(t, "loaded", func() bool { return s.Snapshot() != nil })
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	waitFor(t, "the new app applied while etcd's reads hang", func() bool { return s.Snapshot().Org("acme").App("web") != nil })
}

// TestSyncerLeavesRuntimeAlone: the registry changes no process-wide
// runtime state (GOGC, the memory limit, GOMAXPROCS, forced GCs): it only
// calls the load hooks, around each full load, and the program tunes the
// runtime in them (cmd/meshdns/memory.go). Its sources do not even import
// runtime/debug.
func TestSyncerLeavesRuntimeAlone(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, banned := range []string{`"runtime/debug"`, "runtime.GOMAXPROCS(", "runtime.GC("} {
			if strings.Contains(string(src), banned) {
				t.Errorf("%s uses %s: runtime tuning belongs to the program, through SyncerConfig's hooks", name, banned)
			}
		}
	}

	gcPercent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	defer debug.SetGCPercent(debug.SetGCPercent(77))
	var calls []string
	clk := newFakeClock()
	f := &stubEtcd{rev: 10, clock: clk}
	cfg := SyncerConfig{Client: f, Prefix: DefaultPrefix, Store: NewStore(DefaultPrefix), Clock: clk,
		OnLoadStart: func() { calls = append(calls, fmt.Sprintf("start gc=%d", gcPercent())) },
		OnLoadEnd:   func(err error) { calls = append(calls, fmt.Sprintf("end %v gc=%d", err, gcPercent())) }}
	sy := NewSyncer(cfg)
	if err := sy.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start gc=77", "end <nil> gc=77"}; !slices.Equal(calls, want) || gcPercent() != 77 {
		t.Errorf("hooks called %q, GC percentage %d after; want %q and 77 untouched", calls, gcPercent(), want)
	}
}
