package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// waitTimeout bounds every wait for the syncer to catch up. Updates arrive in
// milliseconds; the slack is for -race on a loaded 2-core machine.
const waitTimeout = 20 * time.Second

// runningSyncer is a Syncer running in its own goroutine.
type runningSyncer struct {
	*Syncer
	cancel context.CancelFunc
	done   chan error
}

// startSyncer runs a Syncer until stop is called or the test ends; either
// way Run must have returned before the test is over.
func startSyncer(t testing.TB, cfg SyncerConfig) *runningSyncer {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 200 * time.Millisecond
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSyncer{Syncer: NewSyncer(cfg), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- r.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the syncer and waits for Run to return. Safe to call twice.
func (r *runningSyncer) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && !errors.Is(err, context.Canceled) {
			t.Errorf("Syncer.Run returned %v, want context.Canceled", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Syncer.Run did not return within 10s of its context ending")
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// etcdRevision is etcd's current revision.
func etcdRevision(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "etcd-revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// etcdContents loads what etcd holds under the prefix now into a fresh Store,
// as a server starting at this moment would.
func etcdContents(t testing.TB, cli *clientv3.Client) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, DefaultPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(DefaultPrefix)
	l := s.BeginLoad()
	for _, kv := range resp.Kvs {
		l.Add(eventOf(kv))
	}
	l.ResolveClaims(etcdGetAt(ctx, cli))
	l.Commit(resp.Header.Revision)
	return s
}

// etcdGetAt reads a key at a past revision, for Load.ResolveClaims.
func etcdGetAt(ctx context.Context, cli *clientv3.Client) func(string, int64) (Event, bool, error) {
	return func(key string, rev int64) (Event, bool, error) {
		resp, err := cli.Get(ctx, key, clientv3.WithRev(rev))
		if err != nil || len(resp.Kvs) == 0 {
			return Event{}, false, err
		}
		return eventOf(resp.Kvs[0]), true, nil
	}
}

// waitMatchesEtcd waits until s has caught up with etcd's current revision
// and then requires it to hold exactly what a fresh load of etcd gives:
// the same snapshot dump and the same skipped keys with the same reasons.
func waitMatchesEtcd(t testing.TB, cli *clientv3.Client, s *Store) {
	t.Helper()
	rev := etcdRevision(t, cli)
	waitFor(t, "the store to reach etcd's revision", func() bool { return s.Revision() >= rev })
	want := etcdContents(t, cli)
	if got, exp := dump(t, s.Snapshot()), dump(t, want.Snapshot()); got != exp {
		t.Fatalf("store at revision %d differs from etcd:\nstore:\n%s\netcd:\n%s", s.Revision(), got, exp)
	}
	if got, exp := invalidText(s), invalidText(want); got != exp {
		t.Fatalf("skipped keys differ from etcd's:\nstore:\n%s\netcd:\n%s", got, exp)
	}
}

// waitDump waits until the store's snapshot dumps as want.
func waitDump(t testing.TB, s *Store, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := normText(dump(t, s.Snapshot()))
		if got == normText(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the snapshot; it reads:\n%s\nwant:\n%s", got, normText(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ctxT is a context for one etcd operation of a test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
