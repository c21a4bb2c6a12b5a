package registry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// failingReads fails every Get while failing is set, with etcd's "no
// leader" error, as linearizable reads fail during a leader election. The
// watch and everything else pass through.
type failingReads struct {
	*clientv3.Client
	failing atomic.Bool
	failed  atomic.Int32
}

func (f *failingReads) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if f.failing.Load() {
		f.failed.Add(1)
		return nil, rpctypes.ErrNoLeader
	}
	return f.Client.Get(ctx, key, opts...)
}

// TestSyncerBehindProxyRidesOutFailedReads: behind the gRPC proxy a watch
// on a quiet prefix is quiet for minutes between checks of the prefix
// (they back off to 10 minutes), so quiet past the stall timeout is its
// normal state. A few failed reads of etcd's revision then, as during a
// leader election, must not restart the watch: every host of a fleet would
// restart its watch and start checking the prefix from scratch at once.
// Only etcd silent for a stall timeout (no read answered, nothing on the
// watch) counts as a stall; that still restarts the watch.
func TestSyncerBehindProxyRidesOutFailedReads(t *testing.T) {
	cli, proxied := behindProxy(t)
	reads := &failingReads{Client: proxied}
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	const stall = 2 * time.Second
	log, logs := observed()
	sy := startSyncer(t, SyncerConfig{Client: reads, Store: s, Log: log, ProgressInterval: 300 * time.Millisecond, StallTimeout: stall})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })

	// etcd moves on with writes elsewhere, as a busy cluster does.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := cli.Put(ctx, "/elsewhere/key", time.Now().String()); err != nil && ctx.Err() == nil {
				t.Errorf("write elsewhere: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	// The first check of the prefix comes a stall timeout into the quiet;
	// the next is two stall timeouts after it. In between, past a stall
	// timeout of quiet, the reads fail for three ticks.
	waitFor(t, "a check of the prefix", func() bool { return sy.prefixChecks.Load() >= 1 })
	time.Sleep(stall + 400*time.Millisecond)
	reads.failing.Store(true)
	time.Sleep(900 * time.Millisecond)
	reads.failing.Store(false)
	if n := reads.failed.Load(); n < 2 {
		t.Fatalf("%d reads failed, want at least 2: the test did not exercise the failure", n)
	}
	waitFor(t, "ready after the failed reads", func() bool { return sy.Status().Ready })
	if st := sy.Status(); st.WatchRestarts != 0 || st.Loads != 1 {
		t.Errorf("after %d failed reads of under a stall timeout: %+v, want no watch restart", reads.failed.Load(), st)
	}

	// etcd silent for longer than a stall timeout: the watch is restarted.
	reads.failing.Store(true)
	waitFor(t, "a watch restart with etcd not answering", func() bool { return sy.Status().WatchRestarts >= 1 })
	reads.failing.Store(false)
	// The first failure logged is the stall (the new watch's own reads may
	// fail after it, while etcd is still away).
	failures := logs.FilterMessageSnippet("failed; answering from the last snapshot").All()
	if len(failures) == 0 || !strings.Contains(fmt.Sprint(failures[0].ContextMap()["error"]), "did not answer") {
		t.Errorf("restart with etcd silent: logged %v, want first a stall saying etcd did not answer", failures)
	}
	if st := sy.Status(); st.Loads != 1 {
		t.Errorf("restart with etcd silent: %+v, want no second load", st)
	}
	waitFor(t, "ready again", func() bool { return sy.Status().Ready })
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	waitMatchesEtcd(t, cli, s)
}
