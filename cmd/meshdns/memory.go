package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Memory settings. meshdns holds the whole registry in memory (about 400
// bytes per machine), and the Go default GOGC=100 lets the heap grow to
// twice what is live before collecting: a server with 1,000,000 machines
// would use twice the memory its registry needs, mostly garbage from saving
// the local copy and from reconciles. The defaults here:
//
//   - GC percentage 50 (unless $GOGC is set): the heap grows to 1.5 times
//     what is live. The query path allocates next to nothing, so the extra
//     collections cost little; a full load runs at loadGCPercent.
//   - A soft memory limit (debug.SetMemoryLimit) from $GOMEMLIMIT if set,
//     else 90% of the cgroup's memory limit (a container or a systemd
//     MemoryMax=), so the runtime collects harder instead of the kernel
//     killing the host's resolver; none without either.

// defaultGCPercent is the GC percentage when neither --gc-percent nor $GOGC
// says otherwise.
const defaultGCPercent = 50

// loadGCPercent is the GC percentage while a full load builds the registry
// (registry.SyncerConfig.LoadGCPercent): the heap grows by the whole
// registry then, and collecting at every 1.5x marks it again and again;
// at 400 a load of 1M machines peaked at 1.4 GiB of heap.
const loadGCPercent = 200

// memorySettings are what applyMemorySettings chose, for the start-up log.
type memorySettings struct {
	GCPercent   int
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
		ms.GCPercent = defaultGCPercent
		debug.SetGCPercent(defaultGCPercent)
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
	return []zap.Field{zap.Int("gc_percent", ms.GCPercent), zap.String("memory_limit", limit),
		zap.String("memory_limit_from", ms.LimitSource)}
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
