package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

const (
	reloadApps   = 1000
	reloadPerApp = 100 // 100,000 machines
)

func reloadID(a, j int) string { return fmt.Sprintf("%03x%04x", a, j) }

// TestReloadMemory measures what a full reload of 100,000 machines costs
// meshdns in memory (issue 5: "Report the peak memory of a reload of
// 100,000 machines against the steady state"), and checks that queries are
// answered from the old snapshot throughout.
//
// meshdns loads the registry, settles, and its peak RSS is reset
// (/proc/<pid>/clear_refs); then it is frozen, etcd is restarted (so the
// watch stream breaks), a few machines are written and history compacted,
// and meshdns continues: its watch resumes from a compacted revision and it
// reloads everything. The peak RSS (VmHWM) since the reset is the reload's.
// Speeds and sizes are logged, not asserted; the only assertion is that no
// query fails during the reload. The local copy is off, so that its
// writing does not mix into the figures.
//
// Not parallel: memory and CPU figures of a busy machine say little.
func TestReloadMemory(t *testing.T) {
	c := etcdtest.Cluster(t, 1)
	cli := c.Client(t)
	var apps []string
	var machines []*registry.Machine
	for a := range reloadApps {
		apps = append(apps, fmt.Sprintf("app%03d", a))
		for j := range reloadPerApp {
			machines = append(machines, machineItem(apps[a], reloadID(a, j), regions[j%len(regions)], ip(0x1000+a, j+1)))
		}
	}
	seed(t, cli, apps, machines)
	machines = nil

	m := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args("--local-copy-interval", "0"))
	pid := m.PID()
	probes := []probe{
		{name: reloadID(7, 3) + ".vm.app007.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0x1007, 4).String())},
		{name: reloadID(500, 42) + ".vm.app500.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0x1000+500, 43).String())},
		{name: "regions.app999.internal", qtype: dns.TypeTXT, want: wantTXT("ams,fra,iad,lhr,nrt,ord,sin,syd")},
	}
	mo := model{"app123": {}}
	for j := range reloadPerApp {
		mo["app123"][reloadID(123, j)] = mach{Region: regions[j%len(regions)], IP: ip(0x1000+123, j+1).String(), State: "started"}
	}
	probes = append(probes, mo.listProbes([]string{"app123"})...) // over TCP
	loaded := m.WaitLoaded()
	waitMatch(t, "the 100,000 machines served", 10*time.Second, probes, m.Addr())
	firstHWM := procKiB(t, pid, "VmHWM")
	steady := settledRSS(t, pid)
	t.Logf("meshdns loaded 100,000 machines %v after start (it logged: %s); peak RSS of the start %s, steady RSS %s; %s",
		loaded.Round(time.Millisecond), loadTook(m), mib(firstHWM), mib(steady), goHeap(t, m))

	// Force a full reload.
	resetPeakRSS(t, pid)
	m.Pause()
	c.Member(0).Kill()
	c.Member(0).Start()
	var fresh []*registry.Machine
	for j := range 10 {
		fresh = append(fresh, machineItem("fresh", fmt.Sprintf("f%03x", j), "ams", ip(0xf00, j+1)))
	}
	seed(t, cli, []string{"fresh"}, fresh)
	rev := compact(t, cli)
	m.Resume()
	resumed := time.Now()
	q := startQuerier(t, m.Addr(), 5*time.Millisecond, time.Second, probes...)
	var rssMax int64
	harness.Poll(t, 60*time.Second, 20*time.Millisecond, "the full reload after SIGCONT", func() (bool, string) {
		rssMax = max(rssMax, procKiB(t, pid, "VmRSS"))
		n := metric(t, m.HTTPAddr(), "meshdns_registry_loads_total")
		return n >= 2, fmt.Sprintf("%v full loads", n)
	})
	reloaded := time.Since(resumed)
	waitMatch(t, "the machines written before the reload", 10*time.Second,
		[]probe{{name: "f009.vm.fresh.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xf00, 10).String())}}, m.Addr())
	stats := q.Stop()
	peak := procKiB(t, pid, "VmHWM")
	after := procKiB(t, pid, "VmRSS")
	t.Logf("full reload after a compaction at revision %d: done %v after SIGCONT (it logged: %s)", rev, reloaded.Round(time.Millisecond), loadTook(m))
	t.Logf("RSS: steady before the reload %s; peak during the reload (VmHWM) %s = %.2f× steady, +%s; sampled max %s; right after %s",
		mib(steady), mib(peak), float64(peak)/float64(steady), mib(peak-steady), mib(rssMax), mib(after))
	t.Logf("settled after the reload: RSS %s; %s", mib(settledRSS(t, pid)), goHeap(t, m))
	requireNoFailures(t, "queries during the reload", stats)
}

// settledRSS waits (up to 15 s) until pid's RSS stops moving — four
// samples 250 ms apart within 2 MiB — and returns it.
func settledRSS(t *testing.T, pid int) int64 {
	t.Helper()
	var last []int64
	deadline := time.Now().Add(15 * time.Second)
	for {
		last = append(last, procKiB(t, pid, "VmRSS"))
		if n := len(last); n >= 4 {
			w := last[n-4:]
			lo, hi := w[0], w[0]
			for _, v := range w {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo < 2<<10 || time.Now().After(deadline) {
				return last[n-1]
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// loadTook lists what meshdns logged for each full load.
func loadTook(m *harness.Meshdns) string {
	var parts []string
	for _, e := range logsWith(m, "registry loaded") {
		parts = append(parts, fmt.Sprintf("%v keys in %v", e["keys"], e["took"]))
	}
	return strings.Join(parts, ", then ")
}

// goHeap describes meshdns's Go heap from its /metrics: what is allocated,
// what the runtime holds but does not use, and what it gave back.
func goHeap(t *testing.T, m *harness.Meshdns) string {
	t.Helper()
	ms := metrics(t, m.HTTPAddr())
	return fmt.Sprintf("Go heap: allocated %.1f MiB, idle %.1f MiB (released to the OS %.1f MiB), next GC at %.1f MiB, %v GCs so far",
		ms["go_memstats_heap_alloc_bytes"]/(1<<20), ms["go_memstats_heap_idle_bytes"]/(1<<20),
		ms["go_memstats_heap_released_bytes"]/(1<<20), ms["go_memstats_next_gc_bytes"]/(1<<20), ms["go_gc_duration_seconds_count"])
}
