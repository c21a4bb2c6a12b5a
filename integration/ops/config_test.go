package ops

import (
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
