package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
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
// (registry.SyncerConfig.LoadGCPercent): the heap grows by the whole
// registry then, and collecting at every doubling marks it again and again;
// at 400 a load of 1M machines peaked at 1.4 GiB of heap.
const loadGCPercent = 200

// memorySettings are what applyMemorySettings chose, for the start-up log.
type memorySettings struct {
	GCPercent   int   // at start
	AutoGC      bool  // follow the live heap (adjustGCPercent)
	LimitBytes  int64 // math.MaxInt64: none
	LimitSource string
}

// applyMemorySettings sets the GC percentage and the soft memory limit from
// the flags, the environment and the cgroup.
func applyMemorySettings(o *options) memorySettings {
	var ms memorySettings
	switch {
	case o.gcPercent != 0:
		ms.GCPercent = o.gcPercent
		debug.SetGCPercent(o.gcPercent)
	case os.Getenv("GOGC") != "":
		ms.GCPercent = debug.SetGCPercent(100) // read it back, then restore
		debug.SetGCPercent(ms.GCPercent)
	default:
		ms.GCPercent, ms.AutoGC = autoGCPercent(0), true
		debug.SetGCPercent(ms.GCPercent)
	}
	switch {
	case o.memoryLimit == "off":
		ms.LimitBytes, ms.LimitSource = math.MaxInt64, "--memory-limit off"
	case o.memoryLimit != "auto":
		ms.LimitBytes, ms.LimitSource = o.memoryLimitBytes, "--memory-limit"
	case os.Getenv("GOMEMLIMIT") != "":
		ms.LimitBytes, ms.LimitSource = debug.SetMemoryLimit(-1), "$GOMEMLIMIT"
	default:
		if c, ok := cgroupMemoryLimit(); ok {
			ms.LimitBytes, ms.LimitSource = c/10*9, "90% of the cgroup memory limit"
		} else {
			ms.LimitBytes, ms.LimitSource = math.MaxInt64, "none (no $GOMEMLIMIT, no cgroup limit)"
		}
	}
	debug.SetMemoryLimit(ms.LimitBytes)
	return ms
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
// until ctx ends (a full load sets its own while it runs, and restores the
// one before it).
func adjustGCPercent(ctx context.Context, interval time.Duration, log *zap.Logger) {
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
			debug.SetGCPercent(p)
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
