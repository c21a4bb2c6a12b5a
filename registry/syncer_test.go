package registry

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// TestSyncerSkipsInvalidRawValues: values written past the Writer (clientv3
// directly) that break a rule are skipped, counted and logged with their
// key, and their neighbours are served.
func TestSyncerSkipsInvalidRawValues(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	core, logs := observer.New(zap.InfoLevel)
	s := NewStore(DefaultPrefix, WithLogger(zap.New(core)))
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, Log: zap.New(core)})
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Machine{
		machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted),
		machine("acme", "web", "0a3", "iad", "fdaa:0:18:a7b:3::2", StateStarted),
	} {
		if err := w.PutMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]struct{ value, reason string }{
		"machines/acme/web/0a2":   {`{"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":`, "not valid JSON"},
		"machines/acme/web/0b1":   {`{"region":"ams","ip":"fdaa:0:19:a7b:2::2","state":"started"}`, "ip fdaa:0:19:a7b:2::2: outside the org's network fdaa:0:18::/48"},
		"machines/acme/web/0b2":   {`{"region":"ams","ip":"fdaa:0:18:a7b:4::2","state":"sleeping"}`, `state "sleeping"`},
		"machines/acme/web":       {`{"region":"ams","ip":"fdaa:0:18:a7b:5::2","state":"started"}`, "machines keys have 3"},
		"machines/acme/web/0b3/x": {`{}`, "machines keys have 3"},
		"gizmos/acme":             {`{}`, `unknown kind "gizmos"`},
		"apps/acme/web":           {`"web"`, "not valid JSON"},
	}
	for k, v := range bad {
		if _, err := cli.Put(ctx, DefaultPrefix+k, v.value); err != nil {
			t.Fatal(err)
		}
	}
	waitMatchesEtcd(t, cli, s)
	if got := normText(dump(t, s.Snapshot())); got != normText(`
		org acme fdaa:0:18::/48
		app acme/web
		machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2
		machine acme/web/0a3 iad started fdaa:0:18:a7b:3::2
		owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:3::2=web/0a3`) {
		t.Errorf("served:\n%s", got)
	}
	if s.InvalidCount() != len(bad) {
		t.Errorf("InvalidCount = %d, want %d:\n%s", s.InvalidCount(), len(bad), invalidText(s))
	}
	inv := s.Invalid()
	for k, v := range bad {
		key := DefaultPrefix + k
		if !strings.Contains(inv[key], v.reason) {
			t.Errorf("%s: reason %q, want it to mention %q", k, inv[key], v.reason)
		}
		logged := logs.FilterMessage("registry value skipped").FilterField(zap.String("key", key)).AllUntimed()
		if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["reason"].(string), v.reason) {
			t.Errorf("%s: logged %+v, want one warning with the key and %q", k, logged, v.reason)
		}
	}
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	if st := sy.Status(); st.Loads != 1 {
		t.Errorf("status %+v", st)
	}

	// Fixing and deleting the bad keys brings the count back to zero.
	if _, err := cli.Put(ctx, DefaultPrefix+"machines/acme/web/0a2", `{"region":"ams","ip":"fdaa:0:18:a7b:2::2","state":"started"}`); err != nil {
		t.Fatal(err)
	}
	for k := range bad {
		if k != "machines/acme/web/0a2" {
			if _, err := cli.Delete(ctx, DefaultPrefix+k); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitMatchesEtcd(t, cli, s)
	if s.InvalidCount() != 0 || s.Snapshot().Org("acme").App("web").Machine("0a2") == nil {
		t.Errorf("after the fix: %d skipped, machine 0a2 %v", s.InvalidCount(), s.Snapshot().Org("acme").App("web").Machine("0a2"))
	}
}

// TestSyncerLeaseExpiry: machines on a lease that nobody keeps alive leave
// the snapshot when it expires; the rest stays.
func TestSyncerLeaseExpiry(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	s := NewStore(DefaultPrefix)
	startSyncer(t, SyncerConfig{Client: cli, Store: s})
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	lease, err := w.Grant(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Machine{
		machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted),
		machine("acme", "web", "0a2", "iad", "fdaa:0:18:a7b:2::2", StateStarted),
	} {
		if err := w.PutMachine(ctx, m, WithLease(lease)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PutMachine(ctx, machine("acme", "web", "0a3", "syd", "fdaa:0:18:a7b:3::2", StateStarted)); err != nil {
		t.Fatal(err)
	}
	// The leased machines are served until the lease runs out...
	waitFor(t, "three machines", func() bool { return machineCount(s.Snapshot()) == 3 })
	// ...then only the one without a lease is left.
	start := time.Now()
	waitDump(t, s, `
		org acme fdaa:0:18::/48
		app acme/web
		machine acme/web/0a3 syd started fdaa:0:18:a7b:3::2
		owners acme fdaa:0:18:a7b:3::2=web/0a3`)
	t.Logf("leased machines gone %v after the check", time.Since(start).Round(time.Millisecond))
	if s.InvalidCount() != 0 {
		t.Errorf("skipped:\n%s", invalidText(s))
	}
}

// TestSyncerCompaction: a syncer whose revision was compacted away while it
// was not watching detects it, loads the registry again in full, and ends up
// with exactly what etcd holds; it then follows the watch as usual.
func TestSyncerCompaction(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	core, logs := observer.New(zap.InfoLevel)
	s := NewStore(DefaultPrefix)
	ctx := ctxT(t)

	var items []Item
	for o := range 3 {
		items = append(items, &OrgValue{Name: fmt.Sprintf("org%d", o), Network: netip.MustParsePrefix(fmt.Sprintf("fdaa:0:%x::/48", o+1))})
		for i := range 100 {
			items = append(items, &Machine{Org: fmt.Sprintf("org%d", o), App: fmt.Sprintf("app%d", i%10), ID: fmt.Sprintf("%x", 0x100+i),
				Region: "ams", IP: netip.MustParseAddr(fmt.Sprintf("fdaa:0:%x:1:%x::2", o+1, i)), State: StateStarted})
		}
	}
	if _, err := w.PutAll(ctx, items); err != nil {
		t.Fatal(err)
	}
	first := startSyncer(t, SyncerConfig{Client: cli, Store: s})
	waitMatchesEtcd(t, cli, s)
	first.stop(t)
	stoppedAt := s.Revision()
	before := s.Snapshot()
	beforeDump := dump(t, before)

	// While nobody watches: deletes, state changes, new machines, a whole
	// org gone, raw values that break rules, a network taken over.
	for i := range 100 {
		k := MachineKey("org0", fmt.Sprintf("app%d", i%10), fmt.Sprintf("%x", 0x100+i))
		switch i % 4 {
		case 0:
			if err := w.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := w.SetMachineState(ctx, "org0", k.App, k.Name, StateStopped); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := w.SetMachineState(ctx, "org0", k.App, k.Name, StateDestroyed); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.PutMachine(ctx, machine("org0", "new", fmt.Sprintf("%x", 0x900+i), "syd", fmt.Sprintf("fdaa:0:1:2:%x::2", i), StateStarted)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.DeleteOrg(ctx, "org1"); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"machines/org2/app0/100": `{"region":"ams","ip":"fdaa:0:3:1:0::2","state":"bogus"}`,
		"machines/org2/app1/101": `{"region":"ams","ip":"fdaa:0:1:1:1::2","state":"started"}`,
		"orgs/late":              `{"network":"fdaa:0:3::/48"}`,
		"regions/xyz":            `{"lat":1,"lon":2}`,
	} {
		if _, err := cli.Put(ctx, DefaultPrefix+k, v); err != nil {
			t.Fatal(err)
		}
	}
	rev := etcdRevision(t, cli)
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if s.Revision() != stoppedAt || dump(t, s.Snapshot()) != beforeDump {
		t.Fatal("the store changed while no syncer ran")
	}

	// A new syncer on the same store resumes from its revision, which is
	// gone: it must load in full, not skip ahead.
	second := startSyncer(t, SyncerConfig{Client: cli, Store: s, Log: zap.New(core)})
	waitMatchesEtcd(t, cli, s)
	st := second.Status()
	if st.Loads != 1 || st.WatchRestarts < 1 {
		t.Errorf("status after compaction: %+v, want one load and a watch restart", st)
	}
	if logs.FilterMessageSnippet("compacted").Len() == 0 {
		t.Errorf("nothing logged about the compaction: %v", logs.AllUntimed())
	}
	if dump(t, before) != beforeDump {
		t.Error("the snapshot from before the reload changed")
	}
	checkInvalid(t, "after the reload", s, `
		machines/org2/app0/100: state "bogus"
		machines/org2/app1/101: outside the org's network fdaa:0:3::/48
		orgs/late: network fdaa:0:3::/48 already belongs to org org2`)
	// Serials never go back across the reload.
	if a, b := before.Org("org0").Serial, s.Snapshot().Org("org0").Serial; b <= a {
		t.Errorf("org0 serial %d -> %d across the reload", a, b)
	}

	// And it follows the watch again, without loading.
	if err := w.PutMachine(ctx, machine("org2", "app0", "fff", "iad", "fdaa:0:3:9::2", StateStarted)); err != nil {
		t.Fatal(err)
	}
	waitMatchesEtcd(t, cli, s)
	if s.Snapshot().Org("org2").App("app0").Machine("fff") == nil || second.Status().Loads != 1 {
		t.Errorf("after the reload: machine not seen or loaded again (%+v)", second.Status())
	}
}

// TestSyncerProgress: writes outside the prefix move etcd's revision; the
// syncer learns it through progress notifications without changing
// anything it serves.
func TestSyncerProgress(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	s := NewStore(DefaultPrefix)
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, ProgressInterval: 50 * time.Millisecond})
	ctx := ctxT(t)
	if _, err := cli.Put(ctx, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`); err != nil {
		t.Fatal(err)
	}
	waitMatchesEtcd(t, cli, s)
	org := s.Snapshot().Org("acme")
	for i := range 5 {
		if _, err := cli.Put(ctx, "/elsewhere/key", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitMatchesEtcd(t, cli, s) // waits for the revision of the last put
	if s.Snapshot().Org("acme") != org {
		t.Error("a progress notification rebuilt the org")
	}
	waitFor(t, "ready", func() bool { return sy.Status().Ready })
	if st := sy.Status(); time.Since(st.LastContact) > 5*time.Second || st.Loads != 1 {
		t.Errorf("status %+v", st)
	}
}

// TestSyncerPagedLoad: a load in many small pages reads one consistent
// revision; writes made during the load arrive through the watch.
func TestSyncerPagedLoad(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	ctx := ctxT(t)
	if _, err := cli.Put(ctx, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		v := fmt.Sprintf(`{"region":"ams","ip":"fdaa:0:18:1:%x::2","state":"started"}`, i)
		if _, err := cli.Put(ctx, DefaultPrefix+fmt.Sprintf("machines/acme/app%d/%x", i%7, i), v); err != nil {
			t.Fatal(err)
		}
	}
	// Keys just outside the prefix on both sides are not read.
	for _, k := range []string{"/meshdns/v0/orgs/x", "/meshdns/v10/orgs/x", "/meshdns/v1", "/meshdns/v2/orgs/x"} {
		if _, err := cli.Put(ctx, k, `{}`); err != nil {
			t.Fatal(err)
		}
	}
	// Each load answers with the previous load's snapshot still in place
	// until it commits: count the keys of every snapshot published.
	var mu sync.Mutex
	var machines []int
	s := NewStore(DefaultPrefix, WithListener(func(_, snap *Snapshot, evs []Event) {
		n := machineCount(snap)
		mu.Lock()
		machines = append(machines, n)
		mu.Unlock()
	}))
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, PageSize: 7})
	waitMatchesEtcd(t, cli, s)
	mu.Lock()
	if len(machines) == 0 || machines[0] != 200 {
		t.Errorf("first snapshot published holds %v machines, want all 200 at once", machines)
	}
	mu.Unlock()
	if sy.Status().Loads != 1 || s.InvalidCount() != 0 {
		t.Errorf("status %+v, %d skipped:\n%s", sy.Status(), s.InvalidCount(), invalidText(s))
	}
}

// TestSyncerEtcdDown: with etcd gone the store keeps its snapshot, the
// syncer says it is not ready and why, and Run still stops promptly.
func TestSyncerEtcdDown(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	ctx := ctxT(t)
	if _, err := cli.Put(ctx, DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`); err != nil {
		t.Fatal(err)
	}
	s := NewStore(DefaultPrefix)
	sy := NewSyncer(SyncerConfig{Client: cli, Prefix: DefaultPrefix, Store: s})
	if st := sy.Status(); st.Ready || st.Loads != 0 || st.Revision != 0 {
		t.Errorf("status before Run: %+v", st)
	}
	r := startSyncer(t, SyncerConfig{Client: cli, Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: 500 * time.Millisecond})
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready", func() bool { return r.Status().Ready })
	snap := s.Snapshot()

	e.Close()
	waitFor(t, "not ready with etcd down", func() bool { return !r.Status().Ready })
	waitFor(t, "an error to be reported", func() bool { return r.Status().LastError != "" })
	if s.Snapshot() != snap || s.Snapshot().Org("acme") == nil {
		t.Error("the snapshot changed with etcd down")
	}
	t.Logf("status with etcd down: %+v", r.Status())
	r.stop(t)
}

// TestSyncerResumeAfterMemberRestart runs against real etcd processes. The
// syncer talks to one member; that member is stopped, writes go on through
// the others, and the member comes back. The syncer must resume from its
// revision (no full load) and apply every single revision written while it
// was away, in order. Then the member hangs (SIGSTOP): the syncer must
// notice, say it is not ready, and catch up once the member answers again.
func TestSyncerResumeAfterMemberRestart(t *testing.T) {
	c := etcdtest.Cluster(t, 3)
	cli := c.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	if err := w.PutMachine(ctx, machine("acme", "web", "0a1", "ams", "fdaa:0:18:a7b:1::2", StateStarted)); err != nil {
		t.Fatal(err)
	}

	// Record the revision of every event the store applies.
	var mu sync.Mutex
	var applied []int64
	s := NewStore(DefaultPrefix, WithListener(func(_, _ *Snapshot, evs []Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			applied = append(applied, ev.ModRevision)
		}
	}))
	m0 := c.Member(0)
	sy := startSyncer(t, SyncerConfig{Client: m0.Client(t), Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: time.Second})
	waitMatchesEtcd(t, cli, s)

	// writes makes n single-key writes through members 1 and 2 and returns
	// the revisions they got.
	writes := func(n int, tag string) []int64 {
		t.Helper()
		other := c.Member(1 + n%2).Client(t)
		var revs []int64
		for i := range n {
			k := DefaultPrefix + fmt.Sprintf("machines/acme/web/%x", 0xb00+i)
			v := fmt.Sprintf(`{"region":"ams","ip":"fdaa:0:18:b:%x::2","state":"started","metadata":{"tag":"%s"}}`, i, tag)
			var resp *clientv3.PutResponse
			var err error
			if i%5 == 4 {
				var d *clientv3.DeleteResponse
				d, err = other.Delete(ctx, DefaultPrefix+fmt.Sprintf("machines/acme/web/%x", 0xb00+i-1))
				if err == nil {
					revs = append(revs, d.Header.Revision)
				}
			} else {
				resp, err = other.Put(ctx, k, v)
				if err == nil {
					revs = append(revs, resp.Header.Revision)
				}
			}
			if err != nil {
				t.Fatalf("write %d through %v: %v", i, other.Endpoints(), err)
			}
		}
		return revs
	}
	checkApplied := func(what string, want []int64) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(applied); i++ {
			if applied[i] < applied[i-1] {
				t.Errorf("%s: revisions applied out of order: %d after %d", what, applied[i], applied[i-1])
			}
		}
		for _, r := range want {
			if !slices.Contains(applied, r) {
				t.Errorf("%s: revision %d was written but never applied (applied: %v)", what, r, applied)
			}
		}
	}

	// 1. A clean stop and restart of the syncer's member. The member stays
	// down until the syncer has noticed, so that the syncer itself (not
	// just the client library) has to resume the watch.
	m0.Stop()
	revs := writes(20, "stop")
	waitFor(t, "not ready while the member is down", func() bool { return !sy.Status().Ready })
	m0.Start()
	waitMatchesEtcd(t, cli, s)
	checkApplied("member restart", revs)
	// Whether the syncer or the client library resumed the watch depends
	// on timing; either way it must resume from the revision, not reload.
	if st := sy.Status(); st.Loads != 1 {
		t.Errorf("member restart: %+v, want one load (resume from the revision, not reload)", st)
	}

	// 2. The member hangs: the watch goes quiet, the syncer must notice.
	m0.Pause()
	restarts := sy.Status().WatchRestarts
	revs = writes(20, "pause")
	waitFor(t, "not ready while the member hangs", func() bool { return !sy.Status().Ready })
	// Let the syncer give up on the hung watch and start a new one, which
	// etcd can only answer after the member resumes.
	waitFor(t, "the watch to be restarted", func() bool { return sy.Status().WatchRestarts > restarts })
	m0.Resume()
	waitMatchesEtcd(t, cli, s)
	checkApplied("member hang", revs)
	waitFor(t, "ready again", func() bool { return sy.Status().Ready })
	st := sy.Status()
	if st.Loads != 1 || st.WatchRestarts < 1 {
		t.Errorf("after the hang: %+v, want no reload and at least one watch restart", st)
	}
	t.Logf("status: %+v", st)
}

// machineCount is the number of deployed machines a snapshot serves (0 for nil).
func machineCount(snap *Snapshot) int {
	n := 0
	if snap == nil {
		return 0
	}
	snap.RangeOrgs(func(o *Org) bool {
		for _, a := range o.AppNames() {
			n += o.App(a).Machines.Len()
		}
		return true
	})
	return n
}

// TestSyncerReadyWhenQuiet: with nothing written to etcd after the load,
// etcd sends no progress notification for the watch (its start revision is
// still in the future), yet the snapshot is current: the syncer must become
// ready, and stay ready without tearing its watch down as stalled.
func TestSyncerReadyWhenQuiet(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	if _, err := cli.Put(ctxT(t), DefaultPrefix+"orgs/acme", `{"network":"fdaa:0:18::/48"}`); err != nil {
		t.Fatal(err)
	}
	s := NewStore(DefaultPrefix)
	// Ready needs a contact with etcd within a stall timeout; on a quiet
	// etcd the only contacts are the ticks' reads, each with 100 ms to
	// answer. A 2 s stall timeout leaves room for a few slow reads under
	// the race detector on a busy machine.
	sy := startSyncer(t, SyncerConfig{Client: cli, Store: s, ProgressInterval: 100 * time.Millisecond, StallTimeout: 2 * time.Second})
	waitFor(t, "ready on a quiet etcd", func() bool { return sy.Status().Ready })
	// Watch it for a few stall timeouts: it must not flap.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if st := sy.Status(); !st.Ready || st.WatchRestarts != 0 {
			t.Fatalf("quiet etcd: %+v", st)
		}
	}
	// The first write after the quiet spell arrives as usual.
	if _, err := cli.Put(ctxT(t), DefaultPrefix+"apps/acme/web", `{}`); err != nil {
		t.Fatal(err)
	}
	waitMatchesEtcd(t, cli, s)
	waitFor(t, "ready after a write", func() bool { return sy.Status().Ready })
	if st := sy.Status(); st.Loads != 1 || st.WatchRestarts != 0 {
		t.Errorf("status %+v", st)
	}
}
