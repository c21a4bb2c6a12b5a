package registry

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestDocsStateProgressTimings checks that the docs state the watch's
// progress interval and stall timeout the code uses (NewSyncer's
// defaults, which cmd/meshdns keeps): they once said 5 s and 15 s while
// the code used 2 s and 6 s.
func TestDocsStateProgressTimings(t *testing.T) {
	s := NewSyncer(SyncerConfig{})
	every, stall := s.cfg.ProgressInterval, s.cfg.StallTimeout
	for _, c := range []struct {
		file string
		re   string // submatches: the interval, then the stall timeout if stated
	}{
		{"../docs/DECISIONS.md", `progress notifications we request every (\d+) s — for (\d+) s`},
		{"../docs/deploy.md", `meshdns asks for progress itself every (\d+) s \(and restarts a watch silent for (\d+) s\)`},
		{"../integration/faults/README.md", `the watchdog: ()(\d+) s without progress`},
	} {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(c.re).FindSubmatch(data)
		if m == nil {
			t.Errorf("%s: no sentence matching %q states the progress timings", c.file, c.re)
			continue
		}
		for i, want := range []time.Duration{every, stall} {
			if len(m[i+1]) == 0 {
				continue
			}
			if n, _ := strconv.Atoi(string(m[i+1])); time.Duration(n)*time.Second != want {
				t.Errorf("%s says %q: %d s where the code uses %v", c.file, m[0], n, want)
			}
		}
	}
}
