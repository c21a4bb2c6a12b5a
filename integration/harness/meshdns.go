package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/internal/childproc"
)

const (
	// startTimeout bounds waiting for meshdns to answer, and then to load
	// its registry. Loopback and a local etcd make both take well under a
	// second; the slack is for a loaded 2-core CI machine.
	startTimeout = 30 * time.Second
	// stopTimeout bounds a graceful shutdown before SIGKILL.
	stopTimeout = 15 * time.Second
	// portAttempts is how often StartMeshdns tries with fresh ports when
	// meshdns lost the race for one of them.
	portAttempts = 3
	// tailLines is how much of each output file a failing test prints.
	tailLines = 60
)

// WaitLevel is how far StartMeshdns waits before returning.
type WaitLevel int

const (
	// WaitNone returns as soon as the process has been started.
	WaitNone WaitLevel = iota
	// WaitListening returns once the DNS port answers anything (before the
	// first registry load meshdns answers SERVFAIL).
	WaitListening
	// WaitLoaded returns once an answer is not SERVFAIL: the registry has
	// been loaded. The default.
	WaitLoaded
)

// Option configures StartMeshdns.
type Option func(*config)

type config struct {
	demo      bool
	args      []string
	endpoints []string
	dataDir   string
	ipv6      bool
	wait      WaitLevel
	env       []string
}

// Demo runs meshdns with --demo.
func Demo() Option { return func(c *config) { c.demo = true } }

// Args adds command-line arguments (e.g. "--default-org", "acme").
func Args(args ...string) Option { return func(c *config) { c.args = append(c.args, args...) } }

// EtcdEndpoints makes meshdns use an external etcd (--etcd-endpoints)
// instead of its embedded one.
func EtcdEndpoints(eps ...string) Option {
	return func(c *config) { c.endpoints = append(c.endpoints, eps...) }
}

// DataDir sets --data-dir (default: a new directory under t.TempDir()).
func DataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// IPv6 makes meshdns listen on [::1] too, on the same port as 127.0.0.1.
func IPv6() Option { return func(c *config) { c.ipv6 = true } }

// Env adds environment variables ("NAME=value") to meshdns's environment.
func Env(kv ...string) Option { return func(c *config) { c.env = append(c.env, kv...) } }

// Wait sets how far StartMeshdns waits (default WaitLoaded).
func Wait(w WaitLevel) Option { return func(c *config) { c.wait = w } }

// Meshdns is a running (or stopped) meshdns process.
type Meshdns struct {
	t    testing.TB
	bin  string
	cfg  config
	dir  string // holds output files (and the default data dir)
	port int    // DNS port, UDP and TCP
	// etcd client and peer ports of the embedded etcd; 0 with an external one.
	etcdPort, peerPort int
	// httpPort serves /metrics, /healthz and /readyz (0: the binary has no
	// --http flag).
	httpPort int

	mu      sync.Mutex
	runs    int // how many times the process was started
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Time
	stdout  string // output files of the current run
	stderr  string
}

// StartMeshdns starts the built meshdns with free loopback ports:
// --listen 127.0.0.1:PORT (and [::1]:PORT with IPv6), an embedded etcd on
// --embedded-etcd-url and --embedded-etcd-peer-url (or --etcd-endpoints
// with EtcdEndpoints), --data-dir under t.TempDir(), and any Args. It waits
// as Wait says (by default until the registry is loaded). stdout and stderr
// go to files; their tails are printed if the test fails. t.Cleanup kills
// the process.
func StartMeshdns(t testing.TB, opts ...Option) *Meshdns {
	t.Helper()
	bins := Build(t)
	cfg := config{wait: WaitLoaded}
	for _, o := range opts {
		o(&cfg)
	}
	m := &Meshdns{t: t, bin: bins.Meshdns, cfg: cfg, dir: t.TempDir()}
	ownDataDir := m.cfg.dataDir == ""
	if ownDataDir {
		m.cfg.dataDir = filepath.Join(m.dir, "data")
	}
	// Cleanups run last-in first-out: the kill below runs before this
	// report, so the output files are complete.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("harness: meshdns output (DNS %s, etcd %s):\n%s", m.Addr(), m.EtcdEndpoint(), m.tails())
		}
	})
	t.Cleanup(m.kill)

	for attempt := 1; ; attempt++ {
		m.port = FreePort(t, cfg.ipv6)
		if len(cfg.endpoints) == 0 {
			m.etcdPort, m.peerPort = FreePort(t, false), FreePort(t, false)
		}
		if _, given := argValue(cfg.args, "http"); hasFlag("http") && !given {
			m.httpPort = FreePort(t, false)
		}
		m.launch()
		if cfg.wait == WaitNone {
			return m
		}
		err := m.waitFor(WaitListening)
		if err == nil {
			break
		}
		if errors.Is(err, errPortInUse) && attempt < portAttempts {
			t.Logf("harness: meshdns lost a port race, retrying with new ports: %v", err)
			if ownDataDir {
				// The embedded etcd may have recorded the lost peer URL.
				os.RemoveAll(m.cfg.dataDir)
			}
			continue
		}
		t.Fatalf("harness: %v", err)
	}
	if cfg.wait == WaitLoaded {
		m.WaitLoaded()
	}
	return m
}

// errPortInUse marks a start that failed because a port was taken.
var errPortInUse = errors.New("port already in use")

// launch starts the process with the current ports.
func (m *Meshdns) launch() {
	t := m.t
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs++
	m.stdout = filepath.Join(m.dir, fmt.Sprintf("run%d.stdout", m.runs))
	m.stderr = filepath.Join(m.dir, fmt.Sprintf("run%d.stderr", m.runs))
	outF, err := os.Create(m.stdout)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer outF.Close()
	errF, err := os.Create(m.stderr)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer errF.Close()

	cmd := exec.Command(m.bin, m.argsLocked()...)
	// An *os.File lets the child write directly, with no copying goroutine.
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.Env = append(cleanEnv(), m.cfg.env...)
	if err := childproc.Start(cmd); err != nil {
		t.Fatalf("harness: start meshdns: %v", err)
	}
	m.started = time.Now()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
}

// cleanEnv is the test's environment without variables that would change
// meshdns behind the test's back (its --region default, etcd's ETCD_* flags).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "FLY_REGION=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Cmdline is the argument list meshdns runs with (without the program).
func (m *Meshdns) Cmdline() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.argsLocked()
}

func (m *Meshdns) argsLocked() []string {
	args := []string{"--listen", m.Addr(), "--data-dir", m.cfg.dataDir}
	if m.cfg.ipv6 {
		args = append(args, "--listen", m.Addr6())
	}
	if len(m.cfg.endpoints) > 0 {
		args = append(args, "--etcd-endpoints", strings.Join(m.cfg.endpoints, ","))
	} else {
		args = append(args,
			"--embedded-etcd-url", fmt.Sprintf("http://127.0.0.1:%d", m.etcdPort),
			"--embedded-etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", m.peerPort))
	}
	if m.httpPort != 0 {
		args = append(args, "--http", m.HTTPAddr())
	}
	if m.cfg.demo {
		args = append(args, "--demo")
	}
	if _, given := argValue(m.cfg.args, "load-jitter"); hasFlag("load-jitter") && !given {
		// One server is no fleet: its full loads need not wait a random
		// delay of up to 5 s, which would only slow the tests down. Tests
		// of the spread give --load-jitter themselves.
		args = append(args, "--load-jitter", "0s")
	}
	return append(args, m.cfg.args...)
}

// Addr is the DNS address on 127.0.0.1, "127.0.0.1:PORT".
func (m *Meshdns) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// Addr6 is the DNS address on ::1, "[::1]:PORT" (served only with IPv6).
func (m *Meshdns) Addr6() string { return net.JoinHostPort("::1", strconv.Itoa(m.port)) }

// Port is the DNS port, UDP and TCP, as a string for dig's -p.
func (m *Meshdns) Port() string { return strconv.Itoa(m.port) }

// EtcdEndpoint is where meshctl reaches the registry: the embedded etcd's
// client URL, or the external endpoints comma-separated.
func (m *Meshdns) EtcdEndpoint() string {
	if len(m.cfg.endpoints) > 0 {
		return strings.Join(m.cfg.endpoints, ",")
	}
	return fmt.Sprintf("http://127.0.0.1:%d", m.etcdPort)
}

// HTTPAddr is the address of /metrics, /healthz and /readyz: a free
// port the harness chose, or the --http given with Args; "" when the binary
// under test has no --http flag (or Args turned it off with --http "").
func (m *Meshdns) HTTPAddr() string {
	if v, given := argValue(m.cfg.args, "http"); given {
		return v // given with Args
	}
	if m.httpPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.httpPort))
}

// argValue returns the value of --name in args ("--name v" or
// "--name=v") and whether it is there; the last one wins, as for flags.
func argValue(args []string, name string) (v string, given bool) {
	for i, a := range args {
		if val, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v, given = val, true
		} else if a == "--"+name && i+1 < len(args) {
			v, given = args[i+1], true
		}
	}
	return v, given
}

// DataDir is meshdns's --data-dir.
func (m *Meshdns) DataDir() string { return m.cfg.dataDir }

// StartedAt is when the current process was started.
func (m *Meshdns) StartedAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}

// PID is the current process's id.
func (m *Meshdns) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd.Process.Pid
}

// Stdout is everything the current process printed on stdout so far.
func (m *Meshdns) Stdout() string { return m.readOutput(&m.stdout) }

// Stderr is everything the current process printed on stderr so far (its
// log: JSON lines, as stderr is not a terminal).
func (m *Meshdns) Stderr() string { return m.readOutput(&m.stderr) }

func (m *Meshdns) readOutput(path *string) string {
	m.mu.Lock()
	p := *path
	m.mu.Unlock()
	b, err := os.ReadFile(p)
	if err != nil {
		m.t.Fatalf("harness: %v", err)
	}
	return string(b)
}

// LogEntry is one JSON log line of meshdns, decoded.
type LogEntry map[string]any

// Msg is the entry's message ("msg").
func (e LogEntry) Msg() string { s, _ := e["msg"].(string); return s }

// Level is the entry's level ("info", "warn", ...).
func (e LogEntry) Level() string { s, _ := e["level"].(string); return s }

// Str is the string field k, or "".
func (e LogEntry) Str(k string) string { s, _ := e[k].(string); return s }

// Logs decodes the current process's log. Lines that are not JSON (such as
// a final "meshdns: <error>") are returned with only "msg" set and
// "level" "raw".
func (m *Meshdns) Logs() []LogEntry {
	var out []LogEntry
	sc := bufio.NewScanner(strings.NewReader(m.Stderr()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			e = LogEntry{"level": "raw", "msg": string(line)}
		}
		out = append(out, e)
	}
	return out
}

// WaitLog waits until the current process has logged an entry for which
// match is true, and returns it.
func (m *Meshdns) WaitLog(timeout time.Duration, what string, match func(LogEntry) bool) LogEntry {
	m.t.Helper()
	var found LogEntry
	Poll(m.t, timeout, 20*time.Millisecond, "meshdns log entry "+what, func() (bool, string) {
		for _, e := range m.Logs() {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, "not logged yet"
	})
	return found
}

// Running reports whether the process is running (a paused one is).
func (m *Meshdns) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked()
}

func (m *Meshdns) runningLocked() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// WaitListening waits until the DNS port answers anything and returns how
// long that took since the process started.
func (m *Meshdns) WaitListening() time.Duration {
	m.t.Helper()
	if err := m.waitFor(WaitListening); err != nil {
		m.t.Fatalf("harness: %v", err)
	}
	return time.Since(m.StartedAt())
}

// WaitLoaded waits until meshdns answers _whoami.internal TXT with
// anything but SERVFAIL — it has loaded its registry — and returns how
// long that took since the process started.
func (m *Meshdns) WaitLoaded() time.Duration {
	m.t.Helper()
	if err := m.waitFor(WaitLoaded); err != nil {
		m.t.Fatalf("harness: %v", err)
	}
	return time.Since(m.StartedAt())
}

// waitFor polls with _whoami.internal TXT over UDP until the level is
// reached, the process exits or startTimeout passes.
func (m *Meshdns) waitFor(level WaitLevel) error {
	deadline := time.Now().Add(startTimeout)
	q := NewQuery("_whoami.internal.", dns.TypeTXT, QueryOptions{})
	last := "no reply"
	for {
		r, _, err := Exchange(m.Addr(), q, QueryOptions{Timeout: 100 * time.Millisecond})
		switch {
		case err != nil:
			last = err.Error()
		case level == WaitListening || r.Rcode != dns.RcodeServerFailure:
			return nil
		default:
			last = Rcode(r)
		}
		if !m.Running() {
			if strings.Contains(m.Stderr(), "address already in use") {
				return fmt.Errorf("meshdns exited: %w", errPortInUse)
			}
			return fmt.Errorf("meshdns exited (%v) before answering; stderr:\n%s", m.cmd.ProcessState, tail(m.Stderr(), tailLines))
		}
		if time.Now().After(deadline) {
			what := "answer"
			if level == WaitLoaded {
				what = "load its registry (answer other than SERVFAIL)"
			}
			return fmt.Errorf("meshdns at %s did not %s within %v; last: %s", m.Addr(), what, startTimeout, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (m *Meshdns) Signal(sig syscall.Signal) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		m.t.Fatalf("harness: signal %v: meshdns is not running", sig)
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("harness: signal %v to meshdns: %v", sig, err)
	}
}

// Pause freezes the process (SIGSTOP): its sockets stay open, it answers
// nothing and reads nothing from etcd.
func (m *Meshdns) Pause() { m.t.Helper(); m.Signal(sigStop) }

// Resume continues a paused process (SIGCONT).
func (m *Meshdns) Resume() { m.t.Helper(); m.Signal(sigCont) }

// Stop interrupts the process (SIGINT, what Ctrl-C sends) and waits for it
// to exit, SIGKILLing it after 15 s (which fails the test). It returns the
// exit code, -1 when a signal ended the process. Stopping a process that
// has already exited just returns its code.
func (m *Meshdns) Stop() int {
	m.t.Helper()
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	running := m.runningLocked()
	m.mu.Unlock()
	if cmd == nil {
		m.t.Fatal("harness: Stop: meshdns was never started")
	}
	if running {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Process.Signal(sigCont) // in case it was paused
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			m.t.Errorf("harness: meshdns ignored SIGINT for %v; killed it", stopTimeout)
		}
	}
	return cmd.ProcessState.ExitCode()
}

// Restart starts meshdns again after Stop, with the same ports, data
// directory and arguments, and waits as StartMeshdns did.
func (m *Meshdns) Restart() {
	m.t.Helper()
	if m.Running() {
		m.t.Fatal("harness: Restart: meshdns is still running; Stop it first")
	}
	m.launch()
	switch m.cfg.wait {
	case WaitListening:
		m.WaitListening()
	case WaitLoaded:
		m.WaitLoaded()
	}
}

// kill is the cleanup: SIGKILL whatever runs (paused or not) and reap it.
func (m *Meshdns) kill() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	running := m.runningLocked()
	m.mu.Unlock()
	if running {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// tails is the end of every run's output, for failure reports.
func (m *Meshdns) tails() string {
	m.mu.Lock()
	runs := m.runs
	m.mu.Unlock()
	var b strings.Builder
	for i := 1; i <= runs; i++ {
		for _, f := range []string{"stdout", "stderr"} {
			p := filepath.Join(m.dir, fmt.Sprintf("run%d.%s", i, f))
			data, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(&b, "--- run %d %s: %v\n", i, f, err)
				continue
			}
			fmt.Fprintf(&b, "--- run %d %s (last %d lines):\n%s\n", i, f, tailLines, tail(string(data), tailLines))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DigArgs returns dig arguments that query this server on 127.0.0.1,
// followed by args.
func (m *Meshdns) DigArgs(args ...string) []string {
	return append([]string{"@127.0.0.1", "-p", m.Port(), "+time=2", "+tries=2"}, args...)
}

// Dig runs the real dig against this server (see DigArgs) and parses its
// output; see digtest.Run.
func (m *Meshdns) Dig(t testing.TB, args ...string) *digtest.Result {
	t.Helper()
	return digtest.Run(t, m.DigArgs(args...)...)
}

// Query sends one query to this server on 127.0.0.1 with miekg/dns; see
// the package-level Query.
func (m *Meshdns) Query(t testing.TB, name string, qtype uint16, opts QueryOptions) *dns.Msg {
	t.Helper()
	return Query(t, m.Addr(), name, qtype, opts)
}

// QuerySize is Query that also returns the reply's size on the wire.
func (m *Meshdns) QuerySize(t testing.TB, name string, qtype uint16, opts QueryOptions) (*dns.Msg, int) {
	t.Helper()
	return QuerySize(t, m.Addr(), name, qtype, opts)
}
