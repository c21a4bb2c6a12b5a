package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// The unit files shipped in deploy/ pass systemd-analyze verify without a
// single complaint (it only warns about unknown keys and bad values, so any
// output is a failure), and meshdns.service keeps its hardening: systemd's
// own exposure score stays low. ExecStart points at the built binary for
// the check, since verify requires the program to exist.
func TestUnitFilesVerify(t *testing.T) {
	analyze := etcdtest.RequireTool(t, "systemd-analyze")
	bins := harness.Build(t)
	dir := t.TempDir()
	for _, name := range []string{"meshdns.service", "meshdns-addresses.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/meshdns", bins.Meshdns)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "./meshdns-addresses.service", "./meshdns.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	cmd = exec.Command(analyze, "security", "--offline=yes", "--no-pager", "./meshdns.service")
	cmd.Dir = dir
	out, _ = cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for meshdns.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.5 {
		t.Errorf("meshdns.service exposure level %.1f, want at most 2.5 (hardening lost?)", level)
	}

	unit, _ := os.ReadFile(filepath.Join(dir, "meshdns.service"))
	for _, want := range []string{"Type=notify", "WatchdogSec=", "User=meshdns", "StateDirectory=meshdns",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "ProtectSystem=strict", "Restart=always", "--data-dir /var/lib/meshdns"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("meshdns.service lacks %q", want)
		}
	}
}
