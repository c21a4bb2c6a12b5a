package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// TestClusterLeaderKillAndMemberRestart runs meshdns against a
// three-member cluster of etcd processes.
//
// Leader killed: while a writer publishes machines (retrying writes that
// fail during the election) and clients query meshdns every 5 ms, the
// leader is SIGKILLed. Every query must be answered right, and every write
// must be visible afterwards — on a meshdns that knows all three members and
// on one that knows only a follower.
//
// Member restarted behind a compaction: the member the second meshdns talks
// to is stopped; changes are written through the other two and compacted
// away; the member is started again. meshdns must catch up with nothing
// lost.
func TestClusterLeaderKillAndMemberRestart(t *testing.T) {
	t.Parallel()
	c := etcdtest.Cluster(t, 3)
	cli := c.Client(t)
	w := registry.NewWriter(cli, prefix)

	keep := []*registry.Machine{
		machineItem("keep", "c0a1", "ams", ip(0xc, 1)),
		machineItem("keep", "c0a2", "fra", ip(0xc, 2)),
		machineItem("keep", "c0a3", "iad", ip(0xc, 3)),
	}
	seed(t, cli, []string{"keep", "pub"}, keep)

	leader := c.Leader(t)
	follower := (leader + 1) % 3
	all := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args())
	one := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Member(follower).ClientURL), args())
	steady := []probe{
		{name: "keep.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xc, 1).String(), ip(0xc, 2).String(), ip(0xc, 3).String())},
		{name: "c0a2.vm.keep.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xc, 2).String())},
	}
	waitMatch(t, "keep.internal served", 10*time.Second, steady, all.Addr(), one.Addr())

	// etcdtest's members report to the test's t, so the parts below are
	// not subtests (they would call t.Fatal from another goroutine).
	{
		qAll := startQuerier(t, all.Addr(), 5*time.Millisecond, time.Second, steady...)
		qOne := startQuerier(t, one.Addr(), 5*time.Millisecond, time.Second, steady...)
		wr := startMachineWriter(w, "pub", 20*time.Millisecond)
		defer wr.stop()

		// About a second of writes before the kill and two after the
		// election.
		harness.Poll(t, 20*time.Second, 10*time.Millisecond, "50 machines written before the kill", func() (bool, string) {
			n := wr.count()
			return n >= 50, fmt.Sprintf("%d written", n)
		})
		killed := time.Now()
		c.Member(leader).Kill()
		newLeader := c.Leader(t)
		elected := time.Since(killed)
		atKill := wr.count()
		harness.Poll(t, 30*time.Second, 10*time.Millisecond, "100 more machines written after the election", func() (bool, string) {
			n := wr.count()
			return n >= atKill+100, fmt.Sprintf("%d written, %d when the new leader was known", n, atKill)
		})
		written, retried, errs := wr.stop()
		t.Logf("leader m%d killed; m%d leads after %v; the writer wrote %d machines, %d of them needed retries (e.g. %v)",
			leader, newLeader, elected.Round(time.Millisecond), len(written), retried, errs)

		requireNoFailures(t, "queries to meshdns with all three endpoints during the leader kill", qAll.Stop())
		requireNoFailures(t, "queries to meshdns with one follower's endpoint during the leader kill", qOne.Stop())

		mo := readModel(t, cli)
		if got := len(mo["pub"]); got != len(written) {
			t.Fatalf("etcd holds %d machines of pub, the writer wrote %d", got, len(written))
		}
		ps := mo.listProbes([]string{"keep", "pub"})
		for _, id := range written {
			ps = append(ps, mo.vmProbe(appID{"pub", id}))
		}
		took := waitMatch(t, "every write visible", 10*time.Second, ps, all.Addr(), one.Addr())
		t.Logf("all %d writes visible on both servers %v after the writer stopped", len(written), took.Round(time.Millisecond))
	}
	if t.Failed() {
		return
	}
	c.Member(leader).Start()

	{
		x := c.Member(follower)
		var others []string
		for i := range 3 {
			if i != follower {
				others = append(others, c.Member(i).ClientURL)
			}
		}
		ocli := newClient(t, others...)
		ow := registry.NewWriter(ocli, prefix)
		before := metrics(t, one.HTTPAddr())
		q := startQuerier(t, one.Addr(), 20*time.Millisecond, time.Second, steady...)

		x.Stop()
		stopped := time.Now()
		changed := writeRound(t, ow, ocli)
		rev := compact(t, ocli)
		t.Logf("member m%d stopped; %d changes written through the others and compacted at revision %d", follower, len(changed), rev)
		start := time.Now()
		x.Start()
		t.Logf("m%d back after %v (start took %v)", follower, time.Since(stopped).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

		mo := readModel(t, ocli)
		ps := mo.listProbes(mo.appNames())
		for _, a := range changed {
			ps = append(ps, mo.vmProbe(a))
		}
		took := waitMatch(t, "meshdns caught up after the member came back", 30*time.Second, ps, one.Addr(), all.Addr())
		t.Logf("both servers match etcd %v after m%d started again (%v after its start returned)",
			(time.Since(start)).Round(time.Millisecond), follower, took.Round(time.Millisecond))
		after := metrics(t, one.HTTPAddr())
		t.Logf("meshdns on m%d only: full loads %v → %v, watch restarts %v → %v", follower,
			before["meshdns_registry_loads_total"], after["meshdns_registry_loads_total"],
			before["meshdns_registry_watch_restarts_total"], after["meshdns_registry_watch_restarts_total"])
		for _, e := range logsWith(one, "compacted") {
			t.Logf("meshdns logged: %s (revision %v)", e.Msg(), e["revision"])
		}
		requireNoFailures(t, "queries to meshdns while its only member was away", q.Stop())
		body, took := waitReadyz(t, one.HTTPAddr(), 200, 20*time.Second)
		t.Logf("/readyz %q %v later", body, took.Round(time.Millisecond))
	}
}

// machineWriter publishes new machines of one app, one every interval,
// retrying each write until it succeeds.
type machineWriter struct {
	mu      sync.Mutex
	written []string
	retried int
	errs    []string
	done    chan struct{}
	quit    chan struct{}
	once    sync.Once
}

func startMachineWriter(w *registry.Writer, app string, interval time.Duration) *machineWriter {
	mw := &machineWriter{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(mw.done)
		for i := 1; ; i++ {
			select {
			case <-mw.quit:
				return
			case <-time.After(interval):
			}
			id := fmt.Sprintf("b%04x", i)
			m := registry.Machine{Org: orgName, App: app, ID: id, Region: regions[i%len(regions)], IP: ip(0xb, i), State: registry.StateStarted}
			attempts, err := retry(func(ctx context.Context) error {
				err := w.PutMachine(ctx, m)
				if err != nil {
					mw.mu.Lock()
					if len(mw.errs) < 3 {
						mw.errs = append(mw.errs, err.Error())
					}
					mw.mu.Unlock()
				}
				return err
			})
			mw.mu.Lock()
			if err != nil {
				mw.errs = append(mw.errs, "GAVE UP: "+err.Error())
			} else {
				mw.written = append(mw.written, id)
				if attempts > 1 {
					mw.retried++
				}
			}
			mw.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return mw
}

func (mw *machineWriter) count() int {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return len(mw.written)
}

// stop ends the writer and returns the machines written, how many needed
// retries, and the first errors seen.
func (mw *machineWriter) stop() (written []string, retried int, errs []string) {
	mw.once.Do(func() { close(mw.quit) })
	<-mw.done
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return mw.written, mw.retried, mw.errs
}

// writeRound makes a round of changes to app pub and a new app: machines
// added, stopped, destroyed and removed. It returns every machine touched.
func writeRound(t *testing.T, w *registry.Writer, cli *clientv3.Client) []appID {
	t.Helper()
	mo := readModel(t, cli)
	var ids []string
	for id := range mo["pub"] {
		ids = append(ids, id)
	}
	if len(ids) < 30 {
		t.Fatalf("pub has %d machines, want at least 30 to change", len(ids))
	}
	do := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		if _, err := retry(f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var changed []appID
	for i := range 10 {
		id := fmt.Sprintf("d%04x", i+1)
		m := registry.Machine{Org: orgName, App: "pub", ID: id, Region: "syd", IP: ip(0xd, i+1), State: registry.StateStarted}
		do("put "+id, func(ctx context.Context) error { return w.PutMachine(ctx, m) })
		changed = append(changed, appID{"pub", id})
	}
	for i, id := range ids[:20] {
		state := []string{registry.StateStopped, "destroyed", "suspended", "failed"}[i%4]
		do("state "+id, func(ctx context.Context) error { return w.SetMachineState(ctx, orgName, "pub", id, state) })
		changed = append(changed, appID{"pub", id})
	}
	for _, id := range ids[20:30] {
		do("rm "+id, func(ctx context.Context) error {
			err := w.Delete(ctx, registry.MachineKey(orgName, "pub", id))
			if err != nil && strings.Contains(err.Error(), registry.ErrNotFound.Error()) {
				return nil // an earlier attempt deleted it
			}
			return err
		})
		changed = append(changed, appID{"pub", id})
	}
	m := registry.Machine{Org: orgName, App: "late", ID: "e001", Region: "nrt", IP: ip(0xe, 1), State: registry.StateStarted}
	do("put late/e001", func(ctx context.Context) error { return w.PutMachine(ctx, m) })
	return append(changed, appID{"late", "e001"})
}
