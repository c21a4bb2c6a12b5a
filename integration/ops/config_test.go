package ops

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
)

// A config file sets the TTL; SIGHUP applies a changed file to the very
// next answer, and a broken file is rejected with the old TTL kept.
func TestConfigFileAndSIGHUP(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "meshdns.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# settings keyed by flag name\nttl: 7s\nhttp: \"\"\n")
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--config", cfg))
	wantTTL(t, m, 7)

	reloads := func(msg string) int {
		n := 0
		for _, e := range m.Logs() {
			if e.Msg() == msg {
				n++
			}
		}
		return n
	}
	hup := func(msg string, want int) harness.LogEntry {
		t.Helper()
		m.Signal(syscall.SIGHUP)
		return m.WaitLog(10*time.Second, msg, func(e harness.LogEntry) bool {
			return e.Msg() == msg && reloads(msg) >= want
		})
	}

	write("ttl: 23s\nhttp: \"\"\n")
	e := hup("configuration reloaded", 1)
	if e.Str("ttl") != "23s" {
		t.Errorf("reload logged ttl %q, want 23s", e.Str("ttl"))
	}
	wantTTL(t, m, 23)

	for i, broken := range []string{
		"ttl: 9s\nttl-typo: 1s\n", // unknown key: a typo must not pass
		"ttl: 0s\n",               // out of range
		"ttl: [9s\n",              // not YAML
	} {
		write(broken)
		e := hup("configuration not reloaded; keeping the current settings", i+1)
		if e.Level() != "error" || e.Str("file") != cfg || e.Str("error") == "" {
			t.Errorf("broken file %q logged %v, want an error naming %s and the problem", broken, e, cfg)
		}
		wantTTL(t, m, 23)
	}
	if !strings.Contains(m.Stderr(), "ttl-typo") {
		t.Error("the unknown key is not named in the log")
	}
}

// wantTTL asks for web.internal AAAA and checks the TTL of the answers.
func wantTTL(t *testing.T, m *harness.Meshdns, ttl uint32) {
	t.Helper()
	r := m.Query(t, "web.internal", dns.TypeAAAA, harness.QueryOptions{})
	if len(r.Answer) == 0 {
		t.Fatalf("web.internal: %s with no answer", harness.Rcode(r))
	}
	for _, rr := range r.Answer {
		if rr.Header().Ttl != ttl {
			t.Errorf("answer %v: TTL %d, want %d", rr, rr.Header().Ttl, ttl)
		}
	}
}

// SIGHUP applies a changed --gc-percent and --memory-limit to the Go
// runtime at once, as /metrics shows (go_gc_gogc_percent,
// go_gc_gomemlimit_bytes), with no restart warning; "memory-limit: off"
// in the file is the word off, as on the command line.
func TestSIGHUPAppliesMemorySettings(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "meshdns.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gc-percent: 150\nmemory-limit: 1GiB\n")
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--config", cfg))
	wantRuntime := func(when string, gc, limit float64) {
		t.Helper()
		// A full load runs at its own GC percentage for a moment.
		harness.Poll(t, 10*time.Second, 50*time.Millisecond, when, func() (bool, string) {
			ss := scrape(t, m.HTTPAddr())
			g, l := value(ss, "go_gc_gogc_percent"), value(ss, "go_gc_gomemlimit_bytes")
			return g == gc && l == limit, fmt.Sprintf("%s: GOGC %v, memory limit %v; want %v and %v", when, g, l, gc, limit)
		})
	}
	wantRuntime("at start", 150, 1<<30)

	write("gc-percent: 70\nmemory-limit: off\n")
	m.Signal(syscall.SIGHUP)
	m.WaitLog(10*time.Second, "configuration reloaded", func(e harness.LogEntry) bool {
		return e.Msg() == "configuration reloaded" || e.Msg() == "configuration not reloaded; keeping the current settings"
	})
	wantRuntime("after SIGHUP", 70, math.MaxInt64)
	for _, e := range m.Logs() {
		if strings.Contains(e.Msg(), "only after a restart") || e.Msg() == "configuration not reloaded; keeping the current settings" {
			t.Errorf("logged %v", e)
		}
	}
}
