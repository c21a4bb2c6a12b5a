package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// TestPausedServerCatchesUp freezes meshdns (SIGSTOP), makes 1,000 changes
// — machines added, state changes, deletions, each its own etcd revision —
// compacts etcd's history past all of them and lets meshdns continue
// (SIGCONT). Within seconds every answer must match etcd: the vms and
// all.vms lists of every app (which cover all 1,000 machines touched) and
// the <id>.vm.<app> AAAA answer of every machine touched. Two rounds: with
// meshdns's watch stream left open, and with the stream broken by an etcd
// restart while meshdns is frozen, which must end in a full load.
func TestPausedServerCatchesUp(t *testing.T) {
	t.Parallel()
	const apps = 10
	c := etcdtest.Cluster(t, 1)
	cli := c.Client(t)
	w := registry.NewWriter(cli, prefix)

	var appNames []string
	var machines []*registry.Machine
	for a := range apps {
		name := fmt.Sprintf("app%d", a)
		appNames = append(appNames, name)
		for j := range pausedPerApp {
			machines = append(machines, machineItem(name, pausedID(a, j), regions[j%len(regions)], ip(0x100+a, j+1)))
		}
	}
	seed(t, cli, appNames, machines)
	// A reconcile every second checks, through all the churn below, that
	// the snapshot never differs from etcd at its revision.
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args("--reconcile-interval", "1s"))
	waitMatch(t, "the seeded registry served", 10*time.Second, readModel(t, cli).listProbes(appNames), m.Addr())

	// Two rounds. In the first, meshdns's watch stream stays open while it
	// is frozen, so etcd has already sent (or still holds) the events.
	// In the second, etcd crashes and restarts while meshdns is frozen, so
	// the stream is gone: meshdns must resume from a revision that was
	// compacted meanwhile, which takes a full load (never "revision + 1").
	for round, restartEtcd := range []bool{false, true} {
		pausedRound(t, m, c, cli, w, appNames, round, restartEtcd)
		if t.Failed() {
			return
		}
	}
	t.Run("reconciles found no drift", func(t *testing.T) { checkNoDrift(t, m) })
}

// checkNoDrift checks that meshdns's reconciles found no difference between
// its snapshot and etcd (issue 5: drift is counted in a metric and logged
// with its keys; "in a healthy run that count stays zero").
func checkNoDrift(t *testing.T, m *harness.Meshdns) {
	t.Helper()
	for _, e := range logsWith(m, "differs from etcd") {
		t.Errorf("reconcile found drift in a healthy run: %s keys=%v first_keys=%v", e.Msg(), e["keys"], e["first_keys"])
	}
	// The metric's name is not fixed by the issue: any series naming
	// reconciles and drift will do.
	find := func(ms map[string]float64, part string) (string, bool) {
		for name := range ms {
			if strings.HasPrefix(name, "meshdns_") && strings.Contains(name, part) {
				return name, true
			}
		}
		return "", false
	}
	ms := metrics(t, m.HTTPAddr())
	reconciles, ok1 := find(ms, "reconcil")
	drift, ok2 := find(ms, "drift")
	if !ok1 || !ok2 {
		t.Errorf("/metrics exports no count of reconciles (found %q) or of drift (found %q); issue 5 asks for drift to be counted in a metric", reconciles, drift)
		return
	}
	harness.Poll(t, 10*time.Second, 100*time.Millisecond, "a reconcile after the last round", func() (bool, string) {
		v := metric(t, m.HTTPAddr(), reconciles)
		return v > ms[reconciles], fmt.Sprintf("%s = %v", reconciles, v)
	})
	if v := metric(t, m.HTTPAddr(), drift); v != 0 {
		t.Errorf("%s = %v in a healthy run, want 0", drift, v)
	}
	t.Logf("%s = %v, %s = %v", reconciles, metric(t, m.HTTPAddr(), reconciles), drift, metric(t, m.HTTPAddr(), drift))
}

// pausedRound is one round of TestPausedServerCatchesUp.
func pausedRound(t *testing.T, m *harness.Meshdns, c *etcdtest.ProcCluster, cli *clientv3.Client, w *registry.Writer,
	appNames []string, round int, restartEtcd bool) {
	const (
		puts       = 40 // new machines per app
		stateChgs  = 30 // state changes per app
		deletes    = 30 // deletions per app
		catchUpMax = 10 * time.Second
	)
	before := metrics(t, m.HTTPAddr())
	// The changes, one etcd revision each.
	type change struct {
		what string
		do   func(ctx context.Context) error
	}
	var changes []change
	var touched []appID
	for a, name := range appNames {
		ids := make([]string, 0, pausedPerApp)
		for j := range pausedPerApp {
			ids = append(ids, pausedID(a, j))
		}
		ids = ids[round*(stateChgs+deletes):]
		for j := range puts {
			mc := registry.Machine{Org: orgName, App: name, ID: fmt.Sprintf("f%x%04x", round, a*1000+j), Region: regions[(j+3)%len(regions)],
				IP: ip(0x200+0x10*round+a, j+1), State: registry.StateStarted}
			if j%4 == 0 {
				mc.State = registry.StateStopped // deployed, not started
			}
			changes = append(changes, change{"put " + mc.ID, func(ctx context.Context) error { return w.PutMachine(ctx, mc) }})
			touched = append(touched, appID{name, mc.ID})
		}
		for j, id := range ids[:stateChgs] {
			state := []string{registry.StateStopped, "destroyed", "suspended"}[j%3]
			changes = append(changes, change{"state " + id, func(ctx context.Context) error { return w.SetMachineState(ctx, orgName, name, id, state) }})
			touched = append(touched, appID{name, id})
		}
		for _, id := range ids[stateChgs : stateChgs+deletes] {
			changes = append(changes, change{"rm " + id, func(ctx context.Context) error { return w.Delete(ctx, registry.MachineKey(orgName, name, id)) }})
			touched = append(touched, appID{name, id})
		}
	}
	if len(changes) != 1000 {
		t.Fatalf("%d changes, want 1000", len(changes))
	}

	m.Pause()
	paused := time.Now()
	if restartEtcd {
		// Killed, not stopped: a graceful stop would wait for the frozen
		// meshdns's watch stream to close, which it never does.
		c.Member(0).Kill()
		c.Member(0).Start()
	}
	startRev, _ := currentRevision(t, cli)
	work := make(chan change)
	errs := make(chan error, len(changes))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range work {
				ctx, cancel := ctx10s()
				if err := ch.do(ctx); err != nil {
					errs <- fmt.Errorf("%s: %w", ch.what, err)
				}
				cancel()
			}
		}()
	}
	for _, ch := range changes {
		work <- ch
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("change while meshdns was frozen: %v", err)
	}
	rev := compact(t, cli)
	t.Logf("round %d: meshdns frozen; etcd restarted: %v; 1000 changes (revisions %d–%d) written and compacted in %v", round, restartEtcd, startRev+1, rev, time.Since(paused).Round(time.Millisecond))

	mo := readModel(t, cli)
	lists := mo.listProbes(appNames)
	var vms []probe
	for _, a := range touched {
		vms = append(vms, mo.vmProbe(a))
	}
	m.Resume()
	resumed := time.Now()
	// The lists cover every machine touched; poll them (and a sample of the
	// AAAA names), then check every AAAA name once: from the moment the
	// lists are right the snapshot must be the final one.
	var sample []probe
	for i := 0; i < len(vms); i += 10 {
		sample = append(sample, vms[i])
	}
	waitMatch(t, "answers match etcd after SIGCONT", catchUpMax, append(lists, sample...), m.Addr())
	took := time.Since(resumed)
	if wrong := mismatches(m.Addr(), vms); len(wrong) > 0 {
		t.Fatalf("the lists match etcd, but %d of %d AAAA answers do not, e.g.:\n  %s", len(wrong), len(vms), wrong[0])
	}
	after := metrics(t, m.HTTPAddr())
	reloaded := after["meshdns_registry_loads_total"] > before["meshdns_registry_loads_total"]
	how := "by replaying the watch"
	if reloaded {
		how = "by a full load (the watch revision was compacted)"
	}
	if restartEtcd && !reloaded {
		t.Errorf("the watch was resumed from a compacted revision, yet meshdns did not load the registry in full")
	}
	t.Logf("round %d: every answer (%d lists, %d AAAA names) matches etcd %v after SIGCONT, %s; watch restarts %v → %v",
		round, len(lists), len(vms), took.Round(time.Millisecond), how,
		before["meshdns_registry_watch_restarts_total"], after["meshdns_registry_watch_restarts_total"])
}

// pausedPerApp is how many machines each app starts with.
const pausedPerApp = 150

// pausedID is the id of seeded machine j of app a.
func pausedID(a, j int) string { return fmt.Sprintf("%x%04x", 0xa+a%6, a*1000+j) }
