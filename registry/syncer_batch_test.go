package registry

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// heldWatcher passes a real watch through, except that while hold is set it
// keeps the responses back; release hands them all over at once, as a
// watch does to a syncer that fell behind.
type heldWatcher struct {
	*clientv3.Client
	mu       sync.Mutex
	hold     bool
	held     []clientv3.WatchResponse
	out      chan clientv3.WatchResponse
	events   atomic.Int64 // events held so far
	progress atomic.Int64 // progress notifications held so far
}

func (w *heldWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := w.Client.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse, 10000)
	w.mu.Lock()
	w.out = out
	w.mu.Unlock()
	go func() {
		defer close(out)
		for r := range in {
			w.mu.Lock()
			if w.hold {
				w.held = append(w.held, r)
				w.events.Add(int64(len(r.Events)))
				if r.IsProgressNotify() {
					w.progress.Add(1)
				}
				w.mu.Unlock()
				continue
			}
			w.mu.Unlock()
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// release sends every held response at once and stops holding.
func (w *heldWatcher) release() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.held {
		w.out <- r
	}
	n := len(w.held)
	w.held, w.hold = nil, false
	return n
}

// TestSyncerBatchesQueuedResponses: the responses a watch has already
// delivered when the syncer comes to them are applied together, one
// snapshot for all, so a syncer that fell behind catches up instead of
// paying a snapshot per event. Progress notifications among them (the
// syncer asks for one every 200 ms here) are still handled, and nothing is
// lost or restarted.
func TestSyncerBatchesQueuedResponses(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	ctx := ctxT(t)
	w := NewWriter(cli, DefaultPrefix)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	var publishes atomic.Int64 // snapshots published with events
	s := NewStore(DefaultPrefix, WithListener(func(_, _ *Snapshot, evs []Event) {
		if len(evs) > 0 {
			publishes.Add(1)
		}
	}))
	hw := &heldWatcher{Client: cli}
	r := startSyncer(t, SyncerConfig{Client: hw, Store: s})
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready", func() bool { return r.Status().Ready })
	restarts := r.Status().WatchRestarts

	hw.mu.Lock()
	hw.hold = true
	hw.mu.Unlock()
	const puts = 50
	for i := range puts {
		v := fmt.Sprintf(`{"region":"ams","ip":"fdaa:0:18:1:%x::2","state":"started"}`, i)
		if _, err := cli.Put(ctx, DefaultPrefix+fmt.Sprintf("machines/acme/app%d/%x", i%3, 0x100+i), v); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every put to reach the held watch", func() bool { return hw.events.Load() == puts })
	// And a progress notification after them, which must not be lost in
	// a batch.
	waitFor(t, "a progress notification to reach the held watch", func() bool { return hw.progress.Load() > 0 })
	before := publishes.Load()
	n := hw.release()
	waitMatchesEtcd(t, cli, s)
	got := publishes.Load() - before
	t.Logf("%d puts in %d held responses applied in %d snapshots", puts, n, got)
	if got >= puts/2 {
		t.Errorf("%d puts queued at once took %d snapshots; want them batched (a few)", puts, got)
	}
	if st := r.Status(); st.WatchRestarts != restarts || st.Loads != 1 {
		t.Errorf("status %+v: want no watch restart (was %d) and one load", st, restarts)
	}
	// The watch goes on as before afterwards.
	if err := w.PutOrg(ctx, OrgValue{Name: "beta", Network: netip.MustParsePrefix("fdaa:0:19::/48")}); err != nil {
		t.Fatal(err)
	}
	waitMatchesEtcd(t, cli, s)
}
