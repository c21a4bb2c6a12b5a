package registry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// hangingWatcher: while hang is set, Watch blocks until its context ends,
// as it does on a member that hangs with its connection open (etcd never
// confirms the watch, so Watch never returns).
type hangingWatcher struct {
	clientv3.Watcher
	hang atomic.Bool
	hung atomic.Int32
}

func (h *hangingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	if h.hang.Load() {
		h.hung.Add(1)
		<-ctx.Done()
		ch := make(chan clientv3.WatchResponse)
		close(ch)
		return ch
	}
	return h.Watcher.Watch(ctx, key, opts...)
}

// TestSyncerWatchNotConfirmedDespiteOtherContact: a watch etcd does not
// confirm within the stall timeout is given up and tried again, even when
// other reads of etcd answer meanwhile. A reconcile that was running when
// the watch restarted keeps reading pages (each a contact with etcd); the
// stall timer used to take any contact for the watch's confirmation, and
// then nothing watched the unconfirmed watch again: it hung for good.
func TestSyncerWatchNotConfirmedDespiteOtherContact(t *testing.T) {
	cli := etcdtest.Embedded(t).Client(t)
	hw := &hangingWatcher{Watcher: cli.Watcher}
	cli.Watcher = hw
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: time.Second})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })

	// Contacts with etcd other than the watch, every 50 ms, as a running
	// reconcile's page reads make them.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sy.contact()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { cancel(); <-done }()

	hw.hang.Store(true)
	sy.requestReload("test: restart the watch")
	waitFor(t, "the next watch to hang", func() bool { return hw.hung.Load() >= 1 })
	start := time.Now()
	// Given up after the 1 s stall timeout and tried again (after a
	// backoff of at most a few hundred ms): a second hung Watch.
	deadline := start.Add(5 * time.Second)
	for hw.hung.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := hw.hung.Load(); n < 2 {
		t.Fatalf("the unconfirmed watch was not given up within %v of hanging (%d Watch calls hung): %+v",
			time.Since(start).Round(time.Millisecond), n, sy.Status())
	}
	t.Logf("unconfirmed watch given up and tried again %v after it hung", time.Since(start).Round(time.Millisecond))
	hw.hang.Store(false)
	waitFor(t, "ready again", func() bool { return sy.Status().Ready })
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	waitMatchesEtcd(t, cli, s)
}
