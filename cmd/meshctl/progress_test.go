package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProgressWriterModes drives the progress writer with a fake clock: on
// a terminal it draws a self-overwriting line with entries, rate and time
// left, at most once per interval (and always the last), and erases it at
// the end; elsewhere it writes nothing.
func TestProgressWriterModes(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		var buf bytes.Buffer
		pw := newProgressWriter(&buf, func(io.Writer) bool { return terminal })
		clock := time.Unix(1000, 0)
		pw.now = func() time.Time { return clock }
		pw.begin()
		for i := 1; i <= 10; i++ {
			clock = clock.Add(100 * time.Millisecond) // 10 entries a second
			pw.update(i*100, 1000)
		}
		pw.done()
		out := buf.String()
		if !terminal {
			if out != "" {
				t.Errorf("not a terminal: wrote %q, want nothing", out)
			}
			continue
		}
		draws := strings.Split(out, "\r\x1b[K")
		// Leading empty piece, draws every 200 ms (at 100, 300, 500, 700,
		// 900 entries) plus the final 1000, and the erasing one at the end.
		if want := []string{"", "writing: 100 of 1000 entries (10%), 1000/s, 1s left"}; len(draws) < 2 || draws[1] != want[1] {
			t.Errorf("first draw: %q, want %q", draws, want[1])
		}
		if n := len(draws); n != 8 || draws[n-2] != "writing: 1000 of 1000 entries (100%), 1000/s, 0s left" || draws[n-1] != "" {
			t.Errorf("draws %q: want 6 lines ending with all 1000 entries, then the line erased", draws)
		}
	}
}

// TestLoadShowsProgressOnATerminal loads a document through etcd with
// stderr taken for a terminal, then for a file: the first shows the
// progress up to every entry and erases it, the second is quiet. Not
// parallel: it replaces stderrIsTerminal.
func TestLoadShowsProgressOnATerminal(t *testing.T) {
	old := stderrIsTerminal
	t.Cleanup(func() { stderrIsTerminal = old })
	path := filepath.Join(t.TempDir(), "doc.json")
	// 2 orgs, 2 apps each, 150 machines each app: 606 entries, 6 transactions.
	if err := os.WriteFile(path, bigDoc(2, 2, 150), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, terminal := range []bool{true, false} {
		stderrIsTerminal = func(io.Writer) bool { return terminal }
		r := newTestRegistry(t, nil)
		res := r.run("load", path)
		if res.code != 0 {
			t.Fatalf("terminal %v: exit %d, stderr %q", terminal, res.code, res.stderr)
		}
		if !strings.HasPrefix(res.stdout, "wrote 2 orgs, 4 apps, 600 machines") {
			t.Errorf("terminal %v: stdout %q", terminal, res.stdout)
		}
		if !terminal {
			if res.stderr != "" {
				t.Errorf("not a terminal: stderr %q, want nothing", res.stderr)
			}
			continue
		}
		if !regexp.MustCompile(`writing: 2 of 606 entries \(0%\)`).MatchString(res.stderr) ||
			!regexp.MustCompile(`writing: 606 of 606 entries \(100%\), \d+/s, 0s left\r\x1b\[K$`).MatchString(res.stderr) {
			t.Errorf("terminal: stderr %q, want progress from the orgs to all 606 entries, then erased", res.stderr)
		}
	}
}
