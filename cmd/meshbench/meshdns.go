//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// buildMeshdns builds cmd/meshdns of the module meshbench runs in, so the
// benchmark measures the code in the working tree.
func buildMeshdns(dir string) (string, error) {
	bin := filepath.Join(dir, "meshdns")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/meshdns/meshdns/cmd/meshdns")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build meshdns (run meshbench inside the repository, or pass --meshdns PATH): %v\n%s", err, out)
	}
	return bin, nil
}

// treeState describes the working tree a build came from: the commit and
// how many files differ from it, so a table can be traced to its code.
func treeState() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	n := bytes.Count(st, []byte("\n"))
	return fmt.Sprintf("commit %s + %d modified files", bytes.TrimSpace(head), n)
}

// meshdnsConfig is how to run one meshdns.
type meshdnsConfig struct {
	Bin        string
	Etcd       string // endpoint
	Prefix     string // registry key prefix
	DefaultOrg string
	Region     string
	DataDir    string
	GoMaxProcs int // 0: Go's default (every core)
	Extra      []string
}

// meshdnsProc is a running meshdns.
type meshdnsProc struct {
	*proc
	Addr string // DNS, UDP and TCP
	HTTP string // /readyz base URL, if this meshdns has --http
}

// startMeshdns starts meshdns on a free loopback port. It returns at
// once; callers wait for answers (waitAnswers) to time its start.
func startMeshdns(c meshdnsConfig, name string) (*meshdnsProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &meshdnsProc{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	args := []string{c.Bin, "--listen", m.Addr, "--etcd-endpoints", c.Etcd,
		"--default-org", c.DefaultOrg, "--region", c.Region, "--data-dir", c.DataDir}
	if c.Prefix != "" {
		args = append(args, "--etcd-prefix", c.Prefix)
	}
	if hasFlag(c.Bin, "rate-limit") {
		// Like NSD's RRL: dnsperf sends everything from one address, and a
		// dropped query stalls one of its slots for the 5 s timeout, so a
		// limiter would measure itself (--meshdns-args can set one).
		args = append(args, "--rate-limit", "0")
	}
	if hasFlag(c.Bin, "max-tcp-conns-per-prefix") {
		// The same for TCP: every benchmark connection comes from
		// 127.0.0.1, one prefix, which meshdns caps at 50 connections
		// (a real fleet's clients are many prefixes). NSD has no
		// per-prefix cap; the global --max-tcp-conns stays.
		args = append(args, "--max-tcp-conns-per-prefix", "1000")
	}
	if hasFlag(c.Bin, "http") {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		m.HTTP = fmt.Sprintf("http://127.0.0.1:%d", hp)
		args = append(args, "--http", fmt.Sprintf("127.0.0.1:%d", hp))
	}
	args = append(args, c.Extra...)
	// The Go runtime prints a line per garbage collection: how often
	// meshdns collects under load, without touching its code.
	env := []string{"GODEBUG=gctrace=1"}
	if c.GoMaxProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(c.GoMaxProcs))
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, err
	}
	m.proc, err = startProc(name, freshPath(filepath.Join(c.DataDir, "meshdns"), ".log"), env, args...)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// freshPath returns base+ext, or base-2+ext, ... whichever does not exist
// yet, so a restarted meshdns does not overwrite its predecessor's log.
func freshPath(base, ext string) string {
	p := base + ext
	for i := 2; ; i++ {
		if _, err := os.Stat(p); err != nil {
			return p
		}
		p = fmt.Sprintf("%s-%d%s", base, i, ext)
	}
}

// hasFlag reports whether bin --help lists --name: newer meshdns builds
// may have flags (such as --http for /readyz) that older ones lack.
func hasFlag(bin, name string) bool {
	helpMu.Lock()
	defer helpMu.Unlock()
	out, ok := helpText[bin]
	if !ok {
		out, _ = exec.Command(bin, "--help").CombinedOutput()
		helpText[bin] = out
	}
	return bytes.Contains(out, []byte("--"+name+" "))
}

var (
	helpMu   sync.Mutex
	helpText = map[string][]byte{} // bin → its --help output
)

// waitReadyz polls /readyz until it answers 200, if this meshdns has it.
func (m *meshdnsProc) waitReadyz(ctx context.Context, timeout time.Duration) (time.Time, bool) {
	if m.HTTP == "" {
		return time.Time{}, false
	}
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok, _ := m.Exited(); ok {
			return time.Time{}, false
		}
		if resp, err := c.Get(m.HTTP + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

// loadTook is what meshdns logged as the duration of its full registry
// load ("registry loaded", field took), if it logged one.
func (m *meshdnsProc) loadTook() (time.Duration, bool) {
	f, err := os.Open(m.LogPath)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"registry loaded"`)) {
			continue
		}
		var rec struct {
			Took json.RawMessage `json:"took"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Took == nil {
			continue
		}
		// zap writes durations as seconds (a number) or as "1.2s".
		if secs, err := strconv.ParseFloat(string(rec.Took), 64); err == nil {
			return time.Duration(secs * float64(time.Second)), true
		}
		if d, err := time.ParseDuration(strings.Trim(string(rec.Took), `"`)); err == nil {
			return d, true
		}
	}
	return 0, false
}

// gcCount is the number of garbage collections meshdns has logged
// (GODEBUG=gctrace=1 lines, "gc N @...").
func (m *meshdnsProc) gcCount() int {
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("gc ")) {
			n++
		}
	}
	return n
}
