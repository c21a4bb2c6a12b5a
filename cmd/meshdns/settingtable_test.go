package main

import (
	"fmt"
	"math"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// derivedFields are the options fields no flag sets: a setting's check
// parses them from its flag's text.
var derivedFields = []string{"forwardCacheBytesN", "forwardCacheMaxN", "answerCacheBytes", "memoryLimitBytes"}

// tableProblems lists what is missing or wrong in a settings table: a
// setting without a reload class, a live one that applies nowhere, a
// field two settings share or no setting sets.
func tableProblems(table []setting) []string {
	var problems []string
	o := &options{}
	owner := map[uintptr]string{}
	names := map[string]bool{}
	for _, s := range table {
		if s.name == "" || names[s.name] {
			problems = append(problems, fmt.Sprintf("setting %q: no name, or the name twice", s.name))
		}
		names[s.name] = true
		if s.help == "" {
			problems = append(problems, s.name+": no help")
		}
		switch s.class {
		case live:
			if len(s.via) == 0 {
				problems = append(problems, s.name+": live, but no applier says how a change reaches the server")
			}
			if slices.Contains(s.via, viaServer) != (s.server != nil) {
				problems = append(problems, s.name+": viaServer and a server function go together")
			}
		case restart:
			if len(s.via) != 0 {
				problems = append(problems, s.name+": restart, but has live appliers")
			}
		default:
			problems = append(problems, s.name+": no reload class (live or restart)")
		}
		if s.field == nil {
			problems = append(problems, s.name+": no options field")
			continue
		}
		p := reflect.ValueOf(s.field(o))
		if p.Kind() != reflect.Pointer {
			problems = append(problems, s.name+": field is not a pointer")
			continue
		}
		if prev, dup := owner[p.Pointer()]; dup {
			problems = append(problems, s.name+": same options field as "+prev)
		}
		owner[p.Pointer()] = s.name
		def := reflect.TypeOf(s.def)
		if _, env := s.def.(fromEnv); env {
			def = reflect.TypeOf("")
		}
		if def != p.Elem().Type() {
			problems = append(problems, fmt.Sprintf("%s: default of type %v for a field of type %v", s.name, def, p.Elem().Type()))
		}
	}
	v := reflect.ValueOf(o).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if _, ok := owner[v.Field(i).Addr().Pointer()]; !ok && !slices.Contains(derivedFields, name) {
			problems = append(problems, "options."+name+": no setting sets it (add an entry to settingTable)")
		}
	}
	return problems
}

func TestSettingTable(t *testing.T) {
	for _, p := range tableProblems(settingTable) {
		t.Error(p)
	}
	// The check catches a setting without a reload class.
	broken := slices.Clone(settingTable)
	broken[0].class = 0
	if p := tableProblems(broken); len(p) != 1 || !strings.Contains(p[0], "no reload class") {
		t.Errorf("a setting without a reload class: problems %q", p)
	}
	// Every flag is a setting of the table, and nothing else is.
	cmd := newRootCmd(nil, nil, func(*options) error { return nil })
	n := 0
	cmd.Flags().VisitAll(func(f *pflagFlag) {
		if f.Name != "help" {
			n++
		}
	})
	if n != len(settingTable) {
		t.Errorf("%d flags, %d settings", n, len(settingTable))
	}
}

// Each restart setting changed by a reload is named in the warning and
// kept at its running value: all of them, not only some.
func TestReloadKeepsEveryRestartSetting(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	p := writeConfig(t, "ttl: 7s\n")
	args := []string{"--config", p}
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: log, qlog: newQueryLog(log, 0)}
	o := mustParse(t, args...)
	if err := rs.apply(o); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, `ttl: 9s
udp-workers: 3
udp-batch: false
udp-blocking: false
pprof: true
reconcile-interval: 1m
local-copy-interval: 1m
load-rate: 100
load-jitter: 1s
log-format: json
http: 127.0.0.1:9999
`)
	reload(args, rs, nil)
	if rs.current.ttl != 9*time.Second {
		t.Errorf("ttl %v, want the reloaded 9s", rs.current.ttl)
	}
	w := logs.FilterMessageSnippet("only after a restart").All()
	if len(w) != 1 {
		t.Fatalf("%d restart warnings, want 1", len(w))
	}
	named := fmt.Sprint(w[0].ContextMap()["settings"])
	want := []string{"http", "udp-blocking", "udp-batch", "udp-workers", "reconcile-interval", "load-rate", "load-jitter", "local-copy-interval", "log-format", "pprof"}
	for _, name := range want {
		if !strings.Contains(named, name) {
			t.Errorf("the restart warning names %s, not %s", named, name)
		}
	}
	// The running values stay, so the logged settings say what is in force.
	c := rs.current
	if c.udpWorkers != o.udpWorkers || c.udpBatch != o.udpBatch || c.udpBlocking != o.udpBlocking || c.pprof != o.pprof ||
		c.reconcileInterval != o.reconcileInterval || c.localCopyInterval != o.localCopyInterval ||
		c.loadRate != o.loadRate || c.loadJitter != o.loadJitter || c.logFormat != o.logFormat || c.http != o.http {
		t.Errorf("restart settings after the reload: %+v; want the running ones %+v", c, o)
	}
}

// SIGHUP applies a changed --gc-percent and --memory-limit to the runtime
// at once, without a restart warning.
func TestReloadAppliesMemorySettings(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	p := writeConfig(t, "gc-percent: 150\nmemory-limit: 1GiB\n")
	args := []string{"--config", p}
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: log, qlog: newQueryLog(log, 0), mem: newMemoryTuner(nil, log)}
	if err := rs.apply(mustParse(t, args...)); err != nil {
		t.Fatal(err)
	}
	check := func(when string, gc int, limit int64) {
		t.Helper()
		if got := debug.SetGCPercent(-1); got != gc {
			t.Errorf("%s: GC percentage %d, want %d", when, got, gc)
		}
		debug.SetGCPercent(gc)
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Errorf("%s: memory limit %d, want %d", when, got, limit)
		}
	}
	check("at start", 150, 1<<30)

	writeFile(t, p, "gc-percent: 70\nmemory-limit: 512MiB\n")
	reload(args, rs, nil)
	check("after SIGHUP", 70, 512<<20)
	// "off" as the file writes it: YAML would read a boolean.
	writeFile(t, p, "gc-percent: 70\nmemory-limit: off\n")
	reload(args, rs, nil)
	check("after memory-limit: off", 70, math.MaxInt64)
	if w := logs.FilterMessageSnippet("only after a restart").All(); len(w) != 0 {
		t.Errorf("restart warnings %v for settings that apply live", w)
	}
	if e := logs.FilterMessage("configuration not reloaded; keeping the current settings").All(); len(e) != 0 {
		t.Errorf("reload refused: %v", e[0].ContextMap())
	}
	ms := logs.FilterMessage("memory settings").All()
	if len(ms) != 3 || ms[1].ContextMap()["gc_percent"] != int64(70) || ms[2].ContextMap()["memory_limit"] != "none" {
		t.Errorf("memory settings logged %d times: %v; want at start and on each of the 2 reloads", len(ms), ms)
	}
	// An unchanged file leaves them alone (and logs nothing new).
	reload(args, rs, nil)
	if n := logs.FilterMessage("memory settings").Len(); n != 3 {
		t.Errorf("an unchanged reload logged memory settings again (%d)", n)
	}
}

// A fixed --gc-percent stops the loop that follows the live heap, so the
// loop cannot overwrite it; 0 starts the loop again.
func TestMemoryTunerStopsAndStartsFollowingTheHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "")
	m := newMemoryTuner(t.Context(), zap.NewNop())
	m.interval = time.Millisecond
	defer m.stopFollowing()
	m.apply(mustParse(t))
	if m.stopAuto == nil {
		t.Fatal("--gc-percent 0: not following the live heap")
	}
	m.apply(mustParse(t, "--gc-percent", "150"))
	if m.stopAuto != nil {
		t.Fatal("--gc-percent 150: still following the live heap")
	}
	time.Sleep(20 * time.Millisecond) // 20 of the loop's intervals
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GC percentage %d after --gc-percent 150, want 150", got)
	}
	m.apply(mustParse(t, "--gc-percent", "0"))
	if m.stopAuto == nil {
		t.Error("--gc-percent 0 again: not following the live heap")
	}
}
