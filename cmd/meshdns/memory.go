package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
)

// Memory settings. meshdns holds the whole registry in memory (about 400
// bytes per machine), and Go's default GOGC=100 lets the heap grow to
// twice what is live before collecting: at a million machines that is
// 400 MB of room for garbage. The defaults here:
//
//   - The GC percentage follows the live heap (autoGCPercent, unless
//     --gc-percent or $GOGC fixes it): 100 while the registry is small, so
//     collections stay rare — each one slows the feeder's allocations, and
//     at GOGC=50 a registry of 100,000 machines collected four times as
//     often during meshbench propagation, doubling its p99 — tapering to 50
//     as the heap grows, where room of half the live heap is plenty and
//     twice the registry would not fit the memory budget. A full load runs
//     at loadGCPercent.
//   - A soft memory limit (debug.SetMemoryLimit) from $GOMEMLIMIT if set,
//     else 90% of the cgroup's memory limit (a container or a systemd
//     MemoryMax=), so the runtime collects harder instead of the kernel
//     killing the host's resolver; none without either.

// gcRoom is the room autoGCPercent leaves for garbage above the live heap
// while the live heap is big: at least half the live heap, otherwise no
// more than this.
const gcRoom = 256 << 20

// autoGCPercent is the GC percentage for a live heap of live bytes:
// room for min(live, gcRoom) of garbage, but at least live/2 — 100 up to
// 256 MiB live, 64 at 415 MB (a million machines), 50 from 512 MiB.
func autoGCPercent(live uint64) int {
	if live == 0 {
		return 100
	}
	room := max(min(live, gcRoom), live/2)
	return int(100 * room / live)
}

// loadGCPercent is the GC percentage while a full load builds the registry
// (gcOwner.loadStart): the heap grows by the whole registry then, and
// collecting at every doubling marks it again and again; at 400 a load of
// 1M machines peaked at 1.4 GiB of heap.
const loadGCPercent = 200

// gcOwner is the one owner of the GC percentage (GOGC) while meshdns runs:
// the registry changes no runtime state itself and calls the load hooks
// instead (registry.SyncerConfig.OnLoadStart, OnLoadEnd). While a full load
// runs the percentage is loadGCPercent; the loop that follows the live heap
// (adjustGCPercent) records what it wants meanwhile, and the end of the
// load sets that, never a value saved at the start of the load.
type gcOwner struct {
	mu      sync.Mutex
	want    int // what the settings or the loop want outside loads
	loading int // full loads running
	// set sets the GC percentage (debug.SetGCPercent; tests replace it).
	set func(int) int
}

func newGCOwner(percent int) *gcOwner {
	return &gcOwner{want: percent, set: debug.SetGCPercent}
}

// follow records the percentage wanted outside loads, and sets it unless
// a load runs.
func (g *gcOwner) follow(p int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want = p
	if g.loading == 0 {
		g.set(p)
	}
}

// loadStart is the syncer's OnLoadStart.
func (g *gcOwner) loadStart() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.loading++
	if g.loading == 1 {
		g.set(loadGCPercent)
	}
}

// loadEnd is the syncer's OnLoadEnd: the percentage wanted now comes back.
// After a completed load, the replaced snapshot and the pages read are
// garbage: the memory is handed back soon instead of holding the reload's
// peak until the next GC (which an idle server may not run for minutes) —
// but not on the syncer's goroutine: a forced GC of a big heap takes a long
// time (159 ms at 100,000 machines), and the watch, whose first events
// wait for it, starts only when the load returns.
func (g *gcOwner) loadEnd(err error) {
	g.mu.Lock()
	g.loading--
	if g.loading == 0 {
		g.set(g.want)
	}
	g.mu.Unlock()
	if err == nil {
		go debug.FreeOSMemory()
	}
}

// reconcileEnd is the syncer's OnReconcileEnd: a reconcile's pages are
// garbage now; collect and hand the memory back at once (the reconcile's
// goroutine, which nothing waits for), or the GC would keep the heap grown
// by them until the next one.
func (g *gcOwner) reconcileEnd() { debug.FreeOSMemory() }

// procsForBlockingUDP sizes the process for blocking UDP readers
// (--udp-blocking): one socket per P meshdns started with, and each reader
// holds a P while it waits in recvmmsg. One P more than readers leaves the
// runtime (timers, TCP, etcd, GC) a P of its own, so the scheduler never
// has to take a P from a reader in its system call and hand it back when
// the call returns. A blocked reader uses no CPU, so Ps beyond the cores
// cost nothing until every reader is busy at once.
func procsForBlockingUDP(c *dnsserver.Config) {
	c.UDPSockets = runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(c.UDPReaders() + 1)
}

// memorySettings are what the memory settings came to, for the log.
type memorySettings struct {
	GCPercent   int   // at start
	AutoGC      bool  // follow the live heap (adjustGCPercent)
	LimitBytes  int64 // math.MaxInt64: none
	LimitSource string
}

// The GC percentage and memory limit the runtime took from $GOGC and
// $GOMEMLIMIT at start, before meshdns changed either: a reload back to
// the defaults must find them again, not the values meshdns set since.
var (
	envGCPercent   = debug.SetGCPercent(debug.SetGCPercent(100))
	envMemoryLimit = debug.SetMemoryLimit(-1)
)

// gcPercentOf is the GC percentage of --gc-percent; auto: it is to follow
// the live heap (adjustGCPercent). gcOwner sets it.
func gcPercentOf(o *options) (percent int, auto bool) {
	switch {
	case o.gcPercent != 0:
		percent = o.gcPercent
	case os.Getenv("GOGC") != "":
		percent = envGCPercent
	default:
		percent, auto = autoGCPercent(0), true
	}
	return percent, auto
}

// applyMemoryLimit sets the soft memory limit of --memory-limit.
func applyMemoryLimit(o *options) (limit int64, source string) {
	switch {
	case o.memoryLimit == "off":
		limit, source = math.MaxInt64, "--memory-limit off"
	case o.memoryLimit != "auto":
		limit, source = o.memoryLimitBytes, "--memory-limit"
	case os.Getenv("GOMEMLIMIT") != "":
		limit, source = envMemoryLimit, "$GOMEMLIMIT"
	default:
		if c, ok := cgroupMemoryLimit(); ok {
			limit, source = c/10*9, "90% of the cgroup memory limit"
		} else {
			limit, source = math.MaxInt64, "none (no $GOMEMLIMIT, no cgroup limit)"
		}
	}
	debug.SetMemoryLimit(limit)
	return limit, source
}

// memoryTuner applies --gc-percent and --memory-limit at start and on
// every reload that changes them, and runs adjustGCPercent while the GC
// percentage follows the live heap.
type memoryTuner struct {
	ctx context.Context // serve's; nil: no adjustGCPercent (tests)
	log *zap.Logger
	// gc owns the GC percentage: the settings and adjustGCPercent go
	// through it, and so do the registry's loads (run.go).
	gc       *gcOwner
	interval time.Duration // of adjustGCPercent

	applied     bool
	gcPercent   int    // --gc-percent in force
	memoryLimit string // --memory-limit in force
	ms          memorySettings
	stopAuto    context.CancelFunc // of the running adjustGCPercent
	autoDone    chan struct{}
}

func newMemoryTuner(ctx context.Context, log *zap.Logger) *memoryTuner {
	return &memoryTuner{ctx: ctx, log: log, interval: 10 * time.Second, gc: newGCOwner(autoGCPercent(0))}
}

// apply makes o's memory settings those in force, logging them when they
// change. An unchanged setting is left alone: re-applying an automatic
// GC percentage would reset it until adjustGCPercent's next tick.
func (m *memoryTuner) apply(o *options) {
	gcChanged := !m.applied || o.gcPercent != m.gcPercent
	limitChanged := !m.applied || o.memoryLimit != m.memoryLimit
	if !gcChanged && !limitChanged {
		return
	}
	if gcChanged {
		// Stop the loop first, and wait: it must not overwrite the new
		// percentage with one from the live heap.
		m.stopFollowing()
		m.ms.GCPercent, m.ms.AutoGC = gcPercentOf(o)
		m.gc.follow(m.ms.GCPercent)
		if m.ms.AutoGC && m.ctx != nil {
			ctx, cancel := context.WithCancel(m.ctx)
			done := make(chan struct{})
			m.stopAuto, m.autoDone = cancel, done
			go func() {
				defer close(done)
				adjustGCPercent(ctx, m.interval, m.gc, m.log.Named("memory"))
			}()
		}
	}
	if limitChanged {
		m.ms.LimitBytes, m.ms.LimitSource = applyMemoryLimit(o)
	}
	m.applied, m.gcPercent, m.memoryLimit = true, o.gcPercent, o.memoryLimit
	m.log.Info("memory settings", m.ms.fields()...)
}

func (m *memoryTuner) stopFollowing() {
	if m.stopAuto != nil {
		m.stopAuto()
		<-m.autoDone
		m.stopAuto, m.autoDone = nil, nil
	}
}

func (ms memorySettings) fields() []zap.Field {
	limit := "none"
	if ms.LimitBytes != math.MaxInt64 {
		limit = formatSize(ms.LimitBytes)
	}
	return []zap.Field{zap.Int("gc_percent", ms.GCPercent), zap.Bool("gc_percent_follows_heap", ms.AutoGC), zap.String("memory_limit", limit),
		zap.String("memory_limit_from", ms.LimitSource)}
}

// adjustGCPercent sets the GC percentage from the live heap every interval
// until ctx ends, through g (which holds it at loadGCPercent while a full
// load runs).
func adjustGCPercent(ctx context.Context, interval time.Duration, g *gcOwner, log *zap.Logger) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	cur := autoGCPercent(0)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := sample[0].Value.Uint64()
		if p := autoGCPercent(live); p != cur {
			g.follow(p)
			log.Debug("GC percentage follows the live heap", zap.Int("gc_percent", p), zap.Uint64("live_bytes", live))
			cur = p
		}
	}
}

// cgroupMemoryLimit reads the memory limit of meshdns's cgroup (v2, then v1).
func cgroupMemoryLimit() (int64, bool) {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(data))
		n, err := strconv.ParseInt(s, 10, 64)
		// v1 reports "no limit" as a huge number near MaxInt64.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// parseSize parses a size in bytes with an optional binary unit: 512MiB,
// 1GiB, 1.5GiB, 1073741824.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, 1.0
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 2GiB", s)
	}
	return int64(f * mult), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}
