package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// behindProxy is an embedded etcd with a real `etcd grpc-proxy` in front:
// cli talks to etcd directly (the test's writes), proxied through the proxy
// (the syncer's).
func behindProxy(t *testing.T) (cli, proxied *clientv3.Client) {
	t.Helper()
	e := etcdtest.Embedded(t)
	p := etcdtest.StartGRPCProxy(t, etcdtest.EtcdBinary(t), e.Endpoints())
	return e.Client(t), p.Client(t)
}

func put(t *testing.T, cli *clientv3.Client, key, val string) int64 {
	t.Helper()
	resp, err := cli.Put(ctxT(t), key, val)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// TestSyncerBehindProxyQuietPrefix: the gRPC proxy does not forward
// progress requests, so a watch on a quiet prefix hears nothing while
// etcd's revision moves on with writes elsewhere. That is no stall: the
// syncer must stay ready without tearing its watch down, and the next
// write under the prefix must arrive as usual.
func TestSyncerBehindProxyQuietPrefix(t *testing.T) {
	cli, proxied := behindProxy(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	// Each tick's read of etcd's revision has ProgressInterval to answer,
	// and one that fails once the watch has been quiet for a stall timeout
	// (as it is between the backed-off checks of the prefix) restarts the
	// watch: 300 ms, not 100, so that a read through the proxy slowed by
	// the race detector on a busy machine is no restart.
	sy := startSyncer(t, SyncerConfig{Client: proxied, Store: s, ProgressInterval: 300 * time.Millisecond, StallTimeout: time.Second})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	// Creates, an update and a delete arrive through the watch (the
	// syncer's key count follows them; the checks below rely on it).
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	put(t, cli, DefaultPrefix+"apps/acme/tmp", `{}`)
	put(t, cli, DefaultPrefix+"apps/acme/web", `{"flycast":"fdaa:0:18:0:ffff::1"}`)
	if _, err := cli.Delete(ctxT(t), DefaultPrefix+"apps/acme/tmp"); err != nil {
		t.Fatal(err)
	}
	waitMatchesEtcd(t, cli, s)

	// Four stall timeouts of writes outside the prefix only.
	writeElsewhereStayingReady(t, cli, sy, 4*time.Second, "quiet prefix behind the proxy, busy etcd")
	put(t, cli, DefaultPrefix+"apps/acme/api", `{}`)
	waitMatchesEtcd(t, cli, s)
	if st := sy.Status(); !st.Ready || st.Loads != 1 || st.WatchRestarts != 0 {
		t.Errorf("status %+v", st)
	}
	// The watchdog checked the prefix: about 1 s and 3 s into the quiet.
	if n := sy.prefixChecks.Load(); n == 0 || n > 4 {
		t.Errorf("%d checks of the prefix during 4 s of quiet, want 1 to 4 (backing off from 1 s)", n)
	}
}

// TestSyncerBehindProxyPeriodicProgress: an etcd cluster set to send
// progress notifications unasked more often than the stall timeout (a
// deployment setting, docs/proxy.md) keeps a quiet watch behind the proxy
// alive without any check of the prefix.
func TestSyncerBehindProxyPeriodicProgress(t *testing.T) {
	bin := etcdtest.EtcdBinary(t)
	c := etcdtest.ClusterOf(t, 1, bin, etcdtest.ProgressNotifyFlag(t, bin, 300*time.Millisecond))
	p := etcdtest.StartGRPCProxy(t, bin, c.Endpoints())
	cli, proxied := c.Client(t), p.Client(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	// A stall timeout ten times the notification interval: a loaded test
	// machine may delay a notification, not by seconds.
	sy := startSyncer(t, SyncerConfig{Client: proxied, Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: 3 * time.Second})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	writeElsewhereStayingReady(t, cli, sy, 4*time.Second, "quiet prefix behind the proxy, progress every 300 ms")
	if n := sy.prefixChecks.Load(); n != 0 {
		t.Errorf("%d checks of the prefix, want none: etcd's own progress notifications came through the proxy", n)
	}
	if rev, now := s.Revision(), etcdRevision(t, cli); rev < now-10 {
		t.Errorf("snapshot at revision %d, etcd at %d: progress notifications did not move it", rev, now)
	}
}

// stuckWatcher passes a real watch through until stuck is set, and from
// then on swallows every response of the first watch opened: a watch that
// stays open and says nothing, while reads still work.
type stuckWatcher struct {
	clientv3.Watcher
	opened atomic.Int32
	stuck  atomic.Bool
}

func (w *stuckWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := w.Watcher.Watch(ctx, key, opts...)
	first := w.opened.Add(1) == 1
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for r := range in {
			if first && w.stuck.Load() {
				continue
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// TestSyncerBehindProxyStuckWatch: a watch behind the proxy that stops
// delivering while changes are made under the prefix is found out by the
// prefix check (no progress notification could tell) and restarted, and
// the changes arrive through the new watch.
func TestSyncerBehindProxyStuckWatch(t *testing.T) {
	cli, proxied := behindProxy(t)
	sw := &stuckWatcher{Watcher: proxied.Watcher}
	proxied.Watcher = sw
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	// One watch restart exactly: ticks with time for a slow read (see
	// TestSyncerBehindProxyQuietPrefix), so only the stuck watch restarts.
	sy := startSyncer(t, SyncerConfig{Client: proxied, Store: s, ProgressInterval: 300 * time.Millisecond, StallTimeout: time.Second})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	sw.stuck.Store(true)
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	waitMatchesEtcd(t, cli, s)
	st := sy.Status()
	if st.WatchRestarts != 1 || st.Loads != 1 || !strings.Contains(st.LastError, "keys under the prefix changed") {
		t.Errorf("after a stuck watch: %+v, want one watch restart for changes under the prefix, no second load", st)
	}
	waitFor(t, "ready again", func() bool { return sy.Status().Ready })
}

// hungMemberReads: while hung is set, every third Get waits out its
// deadline, as reads the client sends to a frozen member that keeps its
// connection do; the other members answer the rest.
type hungMemberReads struct {
	*clientv3.Client
	hung atomic.Bool
	n    atomic.Int32
	lost atomic.Int32
}

func (h *hungMemberReads) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if h.hung.Load() && h.n.Add(1)%3 == 0 {
		h.lost.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Client.Get(ctx, key, opts...)
}

// TestSyncerBehindProxyHungMemberAfterQuiet: behind the proxy, a watch on
// a quiet prefix backs its checks of the prefix off (here to 8 s after
// three). Then the member carrying it hangs: the watch says nothing, a
// third of the reads time out, the other members answer the rest, and a
// write under the prefix is made. The read that times out after a stall
// timeout of quiet is what gives the hung member away: the watch must be
// restarted and the write served within a few stall timeouts, not at the
// next backed-off check. (A rule that counted a failed read as a stall
// only when no read had succeeded for a stall timeout, tried in the sixth
// session, missed this until the next check.)
func TestSyncerBehindProxyHungMemberAfterQuiet(t *testing.T) {
	cli, proxied := behindProxy(t)
	sw := &stuckWatcher{Watcher: proxied.Watcher}
	proxied.Watcher = sw
	reads := &hungMemberReads{Client: proxied}
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	const stall = time.Second
	sy := startSyncer(t, SyncerConfig{Client: reads, Store: s, ProgressInterval: 300 * time.Millisecond, StallTimeout: stall})
	waitFor(t, "ready", func() bool { return sy.Status().Ready })

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { // etcd moves on with writes elsewhere
		defer close(done)
		for ctx.Err() == nil {
			if _, err := cli.Put(ctx, "/elsewhere/key", time.Now().String()); err != nil && ctx.Err() == nil {
				t.Errorf("write elsewhere: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { cancel(); <-done }()

	// Checks at about 1, 3 and 7 s into the quiet; the next would come 8 s
	// after the third.
	waitFor(t, "three checks of the prefix", func() bool { return sy.prefixChecks.Load() >= 3 })
	if st := sy.Status(); st.WatchRestarts != 0 {
		t.Fatalf("watch restarted before the member hung: %+v", st)
	}
	sw.stuck.Store(true)
	reads.hung.Store(true)
	start := time.Now()
	put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	waitFor(t, "the write under the prefix", func() bool { return s.Snapshot().Org("acme").App("web") != nil })
	took := time.Since(start)
	reads.hung.Store(false)
	t.Logf("write served %v after the member hung (%d reads timed out meanwhile)", took.Round(time.Millisecond), reads.lost.Load())
	if took > 5*stall {
		t.Errorf("write served %v after the member hung, want within 5 stall timeouts (%v): the next backed-off check of the prefix was due 8 s after the last", took.Round(time.Millisecond), 5*stall)
	}
	if st := sy.Status(); st.WatchRestarts == 0 || st.Loads != 1 {
		t.Errorf("after the hung member: %+v, want a watch restart and no second load", st)
	}
	waitMatchesEtcd(t, cli, s)
}

// TestSyncerBehindProxyResumeBecomesReady: a syncer resumes from a snapshot
// (as from a local copy or after a watch error) through the proxy. The
// history it replays ends with writes outside the prefix, so no event
// reaches etcd's revision, and no progress notification comes: readiness
// must still come, without a full load.
func TestSyncerBehindProxyResumeBecomesReady(t *testing.T) {
	cli, proxied := behindProxy(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	s := NewStore(DefaultPrefix)
	cfg := SyncerConfig{Client: proxied, Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: 500 * time.Millisecond}
	first := startSyncer(t, cfg)
	waitFor(t, "ready", func() bool { return first.Status().Ready })
	first.stop(t)

	web := put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
	for i := range 5 {
		put(t, cli, "/elsewhere/key", fmt.Sprint(i))
	}
	sy := startSyncer(t, cfg)
	waitFor(t, "ready after resuming through the proxy", func() bool { return sy.Status().Ready })
	if st := sy.Status(); st.Loads != 0 || st.Revision < web || s.Snapshot().Org("acme").App("web") == nil {
		t.Errorf("resumed: %+v, app web: %v", st, s.Snapshot().Org("acme").App("web"))
	}
	waitMatchesEtcd(t, cli, s)
}

// TestPrefixUnchangedSince: the check behind a quiet watch sees writes,
// deletes and creates under the prefix since a revision, ignores writes
// elsewhere, and takes a key created and deleted again for no change —
// directly and through the proxy, with etcd 3.7 and with Debian's 3.4.
func TestPrefixUnchangedSince(t *testing.T) {
	t.Run("etcd3.7", func(t *testing.T) {
		cli, proxied := behindProxy(t)
		testPrefixUnchangedSince(t, cli, proxied)
	})
	t.Run("etcd3.4", func(t *testing.T) {
		bin := debianEtcd(t)
		c := etcdtest.ClusterOf(t, 1, bin)
		p := etcdtest.StartGRPCProxy(t, bin, c.Endpoints())
		testPrefixUnchangedSince(t, c.Client(t), p.Client(t))
	})
}

// debianEtcd is Debian's etcd 3.4 server; without it the test is skipped,
// or fails under CI=true (scripts/test.sh installs it).
func debianEtcd(t *testing.T) string {
	const bin = "/usr/bin/etcd"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true, so this is an error): scripts/test.sh installs Debian's etcd-server", bin, err)
		}
		t.Skipf("%s: %v; install Debian's etcd-server (scripts/test.sh does)", bin, err)
	}
	return bin
}

func testPrefixUnchangedSince(t *testing.T, cli, proxied *clientv3.Client) {
	for name, c := range map[string]*clientv3.Client{"direct": cli, "proxy": proxied} {
		p := fmt.Sprintf("/check-%s/", name)
		sy := NewSyncer(SyncerConfig{Client: c, Prefix: p, Store: NewStore(p)})
		// Each check reads the count at rev from etcd (the syncer keeps
		// none: no load, no watch), then again with the count it learnt.
		check := func(rev int64, want bool, what string) {
			t.Helper()
			for _, known := range []bool{false, true} {
				if !known {
					sy.keys.forget()
				}
				got, now, err := sy.prefixUnchangedSince(t.Context(), rev)
				if err != nil || got != want || now < rev {
					t.Errorf("%s: %s (count known: %v): unchanged since %d = %v (now %d, %v), want %v", name, what, known, rev, got, now, err, want)
				}
			}
		}
		put(t, cli, p+"a", "1")
		r := put(t, cli, p+"b", "1")
		check(r, true, "nothing since")
		r2 := put(t, cli, "/elsewhere/"+name, "1")
		check(r, true, "a write elsewhere")
		put(t, cli, p+"a", "2")
		check(r2, false, "a key rewritten")
		r = put(t, cli, p+"c", "1")
		if _, err := cli.Delete(ctxT(t), p+"a"); err != nil {
			t.Fatal(err)
		}
		check(r, false, "a key deleted")
		r = put(t, cli, "/elsewhere/"+name, "2")
		put(t, cli, p+"d", "1")
		check(r, false, "a key created")
		r = put(t, cli, "/elsewhere/"+name, "3")
		put(t, cli, p+"e", "1")
		if _, err := cli.Delete(ctxT(t), p+"e"); err != nil {
			t.Fatal(err)
		}
		check(r, true, "a key created and deleted again")
		// Compacted past rev: the count the syncer keeps still answers.
		r = put(t, cli, "/elsewhere/"+name, "4")
		sy.keys.forget()
		if ok, _, err := sy.prefixUnchangedSince(t.Context(), r); !ok || err != nil {
			t.Fatalf("%s: unchanged since %d = %v, %v", name, r, ok, err)
		}
		put(t, cli, "/elsewhere/"+name, "5")
		if _, err := cli.Compact(ctxT(t), etcdRevision(t, cli)); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := sy.prefixUnchangedSince(t.Context(), r); !ok || err != nil {
			t.Errorf("%s: compacted past %d, count kept: unchanged = %v, %v; want true", name, r, ok, err)
		}
		sy.keys.forget()
		if _, _, err := sy.prefixUnchangedSince(t.Context(), r); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("%s: compacted past %d, no count kept: error %v, want %v", name, r, err, rpctypes.ErrCompacted)
		}
	}
}

// TestSyncerPacedLoad: with LoadRate a full load reads in pages of at most
// that many keys and takes at least keys/rate, minus the first page.
func TestSyncerPacedLoad(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	ops := make([]clientv3.Op, 0, 100)
	for i := range 1999 {
		v := fmt.Sprintf(`{"region":"ams","ip":"fdaa:0:18:1:%x::2","state":"started"}`, i)
		ops = append(ops, clientv3.OpPut(DefaultPrefix+fmt.Sprintf("machines/acme/app%d/%x", i%7, i), v))
		if len(ops) == 100 || i == 1998 {
			if _, err := cli.Txn(ctxT(t)).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	s := NewStore(DefaultPrefix)
	start := time.Now()
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, LoadRate: 1000})
	waitFor(t, "loaded", func() bool { return s.Snapshot() != nil })
	took := time.Since(start)
	if n := machineCount(s.Snapshot()); n != 1999 {
		t.Fatalf("loaded %d machines, want 1999", n)
	}
	// 2000 keys at 1000 a second: the second page waits until 1 s, a
	// lower bound that no slow machine can break.
	if took < time.Second {
		t.Errorf("paced load of 2000 keys at 1000 keys/s took %v, want at least 1s", took)
	}
	t.Logf("paced load of 2000 keys at 1000 keys/s took %v; status %+v", took.Round(time.Millisecond), sy.Status())
}

func TestPaceDelay(t *testing.T) {
	for _, tc := range []struct {
		rate, keys int
		elapsed    time.Duration
		want       time.Duration
	}{
		{0, 1000000, 0, 0},
		{1000, 1000, 0, time.Second},
		{1000, 1000, 400 * time.Millisecond, 600 * time.Millisecond},
		{1000, 1000, 2 * time.Second, 0},
		{50000, 150000, time.Second, 2 * time.Second},
	} {
		if got := paceDelay(tc.rate, tc.keys, tc.elapsed); got != tc.want {
			t.Errorf("paceDelay(%d, %d, %v) = %v, want %v", tc.rate, tc.keys, tc.elapsed, got, tc.want)
		}
	}
}

// BenchmarkPrefixCheck measures what the watchdog's check of a quiet
// prefix costs (one transaction: the count at the snapshot's revision, and
// the last-written key now), next to the one-key read of etcd's revision it
// makes every tick, on an embedded etcd 3.7 holding keys registry keys.
// Client and server share the process, so ns/op is etcd's work plus a
// loopback round trip.
func BenchmarkPrefixCheck(b *testing.B) {
	for _, keys := range []int{10000, 100000} {
		e := etcdtest.Embedded(b)
		cli := e.Client(b)
		evs, _ := benchRegistry(keys/1000, 20, 50)
		ops := make([]clientv3.Op, 0, 128) // etcd's default --max-txn-ops
		for i, ev := range evs {
			ops = append(ops, clientv3.OpPut(ev.Key, string(ev.Value)))
			if len(ops) == cap(ops) || i == len(evs)-1 {
				if _, err := cli.Txn(b.Context()).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
				ops = ops[:0]
			}
		}
		sy := NewSyncer(SyncerConfig{Client: cli, Prefix: DefaultPrefix, Store: NewStore(DefaultPrefix)})
		rev, err := sy.etcdRevision(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("keys=%d/prefix", len(evs)), func(b *testing.B) {
			for b.Loop() {
				if ok, _, err := sy.prefixUnchangedSince(b.Context(), rev); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/revision", len(evs)), func(b *testing.B) {
			for b.Loop() {
				if _, err := sy.etcdRevision(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
		e.Close()
	}
}

// silentWatcher opens watches that etcd never confirms — a member that
// hangs with its connection open — while reads still work.
type silentWatcher struct {
	clientv3.Watcher
}

func (w *silentWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	ch := make(chan clientv3.WatchResponse)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch
}

// TestSyncerUnconfirmedWatch: a watch etcd never confirms is not ready,
// even with nothing written (a read would prove the snapshot current, but
// no watch keeps it so), and is given up after the stall timeout.
func TestSyncerUnconfirmedWatch(t *testing.T) {
	cli := etcdtest.Embedded(t).Client(t)
	put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	cli.Watcher = &silentWatcher{Watcher: cli.Watcher}
	s := NewStore(DefaultPrefix)
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, ProgressInterval: 50 * time.Millisecond, StallTimeout: 300 * time.Millisecond})
	deadline := time.Now().Add(waitTimeout)
	for sy.Status().WatchRestarts < 2 {
		if st := sy.Status(); st.Ready {
			t.Fatalf("ready on a watch etcd never confirmed: %+v", st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two watch restarts: %+v", sy.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := sy.Status(); !strings.Contains(st.LastError, "did not confirm the watch") {
		t.Errorf("last error %q, want the watch not confirmed", st.LastError)
	}
}

// versionedEtcd is a real etcd whose Status reports another version, and
// which counts the progress requests made of it.
type versionedEtcd struct {
	*clientv3.Client
	version string
	asked   atomic.Int32
}

func (v *versionedEtcd) Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error) {
	r, err := v.Client.Status(ctx, endpoint)
	if err == nil {
		r.Version = v.version
	}
	return r, err
}

func (v *versionedEtcd) RequestProgress(ctx context.Context) error {
	v.asked.Add(1)
	return v.Client.RequestProgress(ctx)
}

// TestSyncerNoProgressRequestsToOldEtcd: etcd before 3.4.25 (Debian's
// 3.4.23) may answer a progress request ahead of queued events, which
// would make the syncer skip them; the syncer asks no progress of it (one
// warning says why) and stays current with checks of the prefix, as behind
// a proxy. A fixed version is asked as before.
func TestSyncerNoProgressRequestsToOldEtcd(t *testing.T) {
	for _, tc := range []struct {
		version string
		ask     bool
	}{{"3.4.23", false}, {"3.4.25", true}, {"3.7.3", true}} {
		t.Run(tc.version, func(t *testing.T) {
			cli := etcdtest.Embedded(t).Client(t)
			put(t, cli, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`)
			v := &versionedEtcd{Client: cli, version: tc.version}
			log, logs := observed()
			s := NewStore(DefaultPrefix)
			// 300 ms ticks: time for a slow read (see TestSyncerBehindProxyQuietPrefix).
			sy := startSyncer(t, SyncerConfig{Client: v, Store: s, Log: log, ProgressInterval: 300 * time.Millisecond, StallTimeout: time.Second})
			waitFor(t, "ready", func() bool { return sy.Status().Ready })
			// Writes outside the prefix: etcd moves past the snapshot,
			// which the watchdog must account for.
			writeElsewhereStayingReady(t, cli, sy, 2500*time.Millisecond, "writes outside the prefix")
			put(t, cli, DefaultPrefix+"apps/acme/web", `{}`)
			waitMatchesEtcd(t, cli, s)
			asked, checks := v.asked.Load(), sy.prefixChecks.Load()
			warned := logs.FilterMessageSnippet("etcd issue 15220").Len()
			if tc.ask && (asked == 0 || warned != 0) {
				t.Errorf("etcd %s: %d progress requests, %d warnings; want requests and no warning", tc.version, asked, warned)
			}
			if !tc.ask && (asked != 0 || checks == 0 || warned != 1) {
				t.Errorf("etcd %s: %d progress requests, %d prefix checks, %d warnings; want no request, checks instead, one warning", tc.version, asked, checks, warned)
			}
		})
	}
}

// writeElsewhereStayingReady writes outside the prefix every 50 ms for d,
// failing (with what) as soon as the syncer is not ready or has restarted
// its watch: etcd's revision moves on while the prefix stays quiet.
func writeElsewhereStayingReady(t *testing.T, cli *clientv3.Client, sy *runningSyncer, d time.Duration, what string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		put(t, cli, "/elsewhere/key", time.Now().String())
		if st := sy.Status(); !st.Ready || st.WatchRestarts != 0 {
			t.Fatalf("%s: %+v", what, st)
		}
	}
}
