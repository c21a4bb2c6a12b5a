package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/childproc"
)

const (
	// readyTimeout bounds waiting for members to serve requests. A healthy
	// cluster is ready in 1-2 s; the slack is for a loaded 2-core CI machine.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a graceful SIGTERM shutdown before we SIGKILL.
	stopTimeout = 15 * time.Second
	// portAttempts is how often Cluster retries with fresh ports when a
	// member lost the race for one of its ports (see FreePorts).
	portAttempts = 3
)

// errPortInUse marks a start-up failure caused by losing a port race, the
// one start-up failure worth retrying.
var errPortInUse = errors.New("port already in use")

// ProcCluster is a cluster of real etcd processes on 127.0.0.1.
// Its methods and its members' report problems with t.Fatal on the t given
// to Cluster, so call them from that test's goroutine, not from subtests or
// other goroutines.
type ProcCluster struct {
	t       testing.TB
	members []*Member
}

// Member is one etcd process of a ProcCluster. Stop, Kill, Pause, Resume and
// Start inject the failures that production sees: clean shutdown, crash,
// a hung process (a paused leader keeps its sockets open but says nothing)
// and recovery from the member's existing data.
type Member struct {
	t testing.TB

	// Index is the member's position in the cluster, as used by Member(i)
	// and returned by Leader.
	Index int
	// Name is the etcd member name, "m<Index>".
	Name string
	// ClientURL (the member's endpoint) and PeerURL stay the same across
	// restarts.
	ClientURL, PeerURL string
	// DataDir is the member's data directory; it survives Stop and Kill.
	DataDir string
	// LogPath is the file receiving the process's stdout and stderr, across
	// all restarts.
	LogPath string

	args   []string // flags except --initial-cluster-state
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been reaped
	paused bool
}

// Cluster starts an n-member etcd cluster of real etcd processes, each with its
// own ports and data directory, and waits until every member serves
// linearizable reads. All processes are killed by t.Cleanup; if the test
// failed, the tail of each member's log is printed first.
//
// The etcd binary is found by EtcdBinary; without it the test is skipped
// (failed under CI=true).
func Cluster(t testing.TB, n int) *ProcCluster {
	t.Helper()
	return ClusterOf(t, n, EtcdBinary(t))
}

// ClusterOf is Cluster with the etcd server binary bin, e.g. an older
// release (Debian's etcd 3.4 is /usr/bin/etcd), and extra flags for every
// member. Flags of its own the release does not know are left out (etcd
// before 3.5 has no --unsafe-no-fsync).
func ClusterOf(t testing.TB, n int, bin string, extra ...string) *ProcCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster size %d < 1", n)
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		c := newProcCluster(t, bin, n, extra...)
		err := c.start()
		if err == nil {
			t.Logf("etcdtest: %d-member etcd cluster ready at %v in %v", n, c.Endpoints(), time.Since(start).Round(time.Millisecond))
			return c
		}
		c.killAll()
		if errors.Is(err, errPortInUse) && attempt < portAttempts {
			t.Logf("etcdtest: retrying cluster start with new ports: %v", err)
			continue
		}
		t.Fatalf("etcdtest: start %d-member cluster: %v", n, err)
	}
}

// newProcCluster allocates ports and directories and registers cleanups, but
// starts nothing.
func newProcCluster(t testing.TB, bin string, n int, extra ...string) *ProcCluster {
	t.Helper()
	base := t.TempDir()
	// All 2n ports come from one FreePorts call, so members never collide
	// with each other, only (rarely) with unrelated processes.
	ports := FreePorts(t, 2*n)
	c := &ProcCluster{t: t}
	var initial []string
	for i := range n {
		m := &Member{
			t:         t,
			Index:     i,
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			DataDir:   filepath.Join(base, fmt.Sprintf("m%d.data", i)),
			LogPath:   filepath.Join(base, fmt.Sprintf("m%d.log", i)),
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.members = append(c.members, m)
	}
	// A per-cluster token makes a member ignore peers of another test's
	// cluster that happen to reach one of its (reused) ports.
	token := fmt.Sprintf("etcdtest-%016x", rand.Uint64())
	for _, m := range c.members {
		m.args = []string{
			bin,
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", token,
			// Info level so that elections show up in failure reports.
			"--logger", "zap",
			"--log-level", "info",
			"--log-outputs", "stderr",
		}
		if hasFlag(t, bin, "unsafe-no-fsync") {
			// SIGKILL does not lose un-fsynced writes (the page cache
			// survives the process), so skipping fsync keeps crash tests
			// honest while making every write much faster.
			m.args = append(m.args, "--unsafe-no-fsync")
		}
		m.args = append(m.args, extra...)
	}
	// Registered before any process starts, and cleanups run last-in
	// first-out, so the kill below runs before this report.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range c.members {
			t.Logf("etcdtest: %s (%s) log, last %d lines:\n%s", m.Name, m.ClientURL, logTailLines, logTail(m.LogPath, logTailLines))
		}
	})
	t.Cleanup(c.killAll)
	return c
}

// start launches the members one after another and waits for all to be
// ready.
//
// Members are not launched all at once because a new member first asks each
// peer whether the cluster already exists, waiting up to 1 s (not
// configurable) for every peer that has opened its port but does not answer
// yet, which is exactly the state of a peer that is itself starting. Launched
// together, three members spend about 2 s in that check; one after another,
// each finds its peers either not listening (refused at once) or answering.
func (c *ProcCluster) start() error {
	deadline := time.Now().Add(readyTimeout)
	for _, m := range c.members {
		if err := m.launch("new"); err != nil {
			return err
		}
		if err := m.waitPeerServing(deadline); err != nil {
			return err
		}
	}
	return c.waitReady()
}

// waitReady waits until every member serves a linearizable read.
func (c *ProcCluster) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for _, m := range c.members {
		if err := m.waitReady(deadline); err != nil {
			return err
		}
	}
	return nil
}

// killAll SIGKILLs every running member and reaps it. It is the cleanup, so
// it must work whatever state the test left members in (running, paused,
// stopped, never started).
func (c *ProcCluster) killAll() {
	for _, m := range c.members {
		if m.running() {
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

// Endpoints returns the client URLs of all members, in member order.
func (c *ProcCluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.ClientURL
	}
	return eps
}

// Member returns member i (0-based).
func (c *ProcCluster) Member(i int) *Member {
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("etcdtest: member %d out of range [0,%d)", i, len(c.members))
	}
	return c.members[i]
}

// Client returns a client using all members' endpoints; t.Cleanup closes it.
func (c *ProcCluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints())
}

// StartAll restarts every member that is not running and waits until all
// members are ready. Use it to recover from losing quorum: a member started
// alone with Member.Start cannot become ready until a majority is back.
// Paused members are not resumed, so resume them first.
func (c *ProcCluster) StartAll() {
	c.t.Helper()
	for _, m := range c.members {
		if !m.running() {
			if err := m.launch("existing"); err != nil {
				c.t.Fatalf("etcdtest: %v", err)
			}
		}
	}
	if err := c.waitReady(); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
}

// Leader returns the index of the current leader, waiting (up to 30 s) for a
// majority of members to report the same leader, so that it never returns a
// deposed leader that has not noticed yet. Paused or stopped members are
// simply not asked.
func (c *ProcCluster) Leader(t testing.TB) int {
	t.Helper()
	cli, err := clientv3.New(clientConfig(c.Endpoints()))
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	defer cli.Close()
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ids := make(map[uint64]int) // member ID -> index
		votes := make(map[uint64]int)
		for _, m := range c.members {
			if !m.running() || m.paused {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.ClientURL)
			cancel()
			if err != nil {
				lastErr = fmt.Errorf("status of %s: %w", m.Name, err)
				continue
			}
			ids[st.Header.MemberId] = m.Index
			if st.Leader != 0 {
				votes[st.Leader]++
			}
		}
		for id, v := range votes {
			if idx, ok := ids[id]; ok && v > len(c.members)/2 {
				return idx
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcdtest: no leader agreed on by a majority within %v (last error: %v)", readyTimeout, lastErr)
	return -1
}

// Client returns a client that talks to this member only; t.Cleanup closes
// it. Combine with clientv3.WithSerializable() to read the member's own,
// possibly stale, copy of the data.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, []string{m.ClientURL})
}

// Stop shuts the member down gracefully (SIGTERM) and waits for it to exit,
// killing it if it takes longer than 15 s. Works on a paused member too.
func (m *Member) Stop() {
	m.t.Helper()
	m.mustBeRunning("Stop")
	m.signal(syscall.SIGTERM)
	if m.paused {
		// A stopped process keeps SIGTERM pending until it continues.
		m.signal(sigCont)
		m.paused = false
	}
	select {
	case <-m.exited:
	case <-time.After(stopTimeout):
		m.cmd.Process.Kill()
		<-m.exited
		m.t.Errorf("etcdtest: %s ignored SIGTERM for %v; killed it", m.Name, stopTimeout)
	}
}

// Kill crashes the member (SIGKILL) and waits for it to exit.
func (m *Member) Kill() {
	m.t.Helper()
	m.mustBeRunning("Kill")
	m.signal(syscall.SIGKILL)
	<-m.exited
	m.paused = false
}

// Pause freezes the member (SIGSTOP). Its sockets stay open but it answers
// nothing, like a hung or overloaded server.
func (m *Member) Pause() {
	m.t.Helper()
	m.mustBeRunning("Pause")
	m.signal(sigStop)
	m.paused = true
}

// Resume continues a paused member (SIGCONT).
func (m *Member) Resume() {
	m.t.Helper()
	m.mustBeRunning("Resume")
	m.signal(sigCont)
	m.paused = false
}

// Start restarts a stopped or killed member from its existing data directory
// and waits until it serves linearizable reads, which means it has caught up
// with the leader's commit index as of the wait. This requires a majority of
// the cluster to be running; to restart several members after losing quorum
// use ProcCluster.StartAll.
func (m *Member) Start() {
	m.t.Helper()
	if m.running() {
		m.t.Fatalf("etcdtest: Start: %s is already running", m.Name)
	}
	if err := m.launch("existing"); err != nil {
		m.t.Fatalf("etcdtest: %v", err)
	}
	if err := m.waitReady(time.Now().Add(readyTimeout)); err != nil {
		m.t.Fatalf("etcdtest: %v", err)
	}
}

// launch starts the etcd process without waiting for it to be ready.
// state is the --initial-cluster-state: "new" on first start, "existing" on
// restarts (etcd ignores it once the data directory exists, but "existing" is
// the truthful value).
func (m *Member) launch(state string) error {
	logFile, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// The child has its own descriptor for the file after Start.
	defer logFile.Close()
	fmt.Fprintf(logFile, "### etcdtest: starting %s (--initial-cluster-state=%s) at %s\n", m.Name, state, time.Now().Format(time.RFC3339Nano))

	args := append(m.args[:len(m.args):len(m.args)], "--initial-cluster-state", state)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = etcdEnv()
	// An *os.File (not an io.Writer) lets the child write directly, with no
	// copying goroutine that could block Wait.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := childproc.Start(cmd); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited, m.paused = cmd, exited, false
	return nil
}

// waitReady polls the member with linearizable reads until one succeeds,
// the process exits, or deadline passes.
func (m *Member) waitReady(deadline time.Time) error {
	cli, err := clientv3.New(clientConfig([]string{m.ClientURL}))
	if err != nil {
		return fmt.Errorf("client for %s: %w", m.Name, err)
	}
	defer cli.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "etcdtest-ready-probe")
		cancel()
		// With authentication on, an anonymous read is refused only after
		// the linearizable wait: the member serves.
		if err == nil || errors.Is(err, rpctypes.ErrUserEmpty) {
			return nil
		}
		if err := m.exitError(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready by deadline (is a majority of the cluster running?): %w", m.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPeerServing waits until the member answers on its peer URL, which it
// does right after bootstrapping, before the cluster has a leader.
func (m *Member) waitPeerServing(deadline time.Time) error {
	hc := &http.Client{Timeout: 200 * time.Millisecond}
	for {
		resp, err := hc.Get(m.PeerURL + "/members")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if err := m.exitError(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving peers by deadline: %w", m.Name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitError returns why the member is no longer running, or nil if it is.
func (m *Member) exitError() error {
	if m.running() {
		return nil
	}
	if strings.Contains(logTail(m.LogPath, logTailLines), "address already in use") {
		return fmt.Errorf("%s exited: %w", m.Name, errPortInUse)
	}
	return fmt.Errorf("%s exited (%v); see its log below", m.Name, m.cmd.ProcessState)
}

func (m *Member) running() bool {
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

func (m *Member) mustBeRunning(op string) {
	m.t.Helper()
	if !m.running() {
		m.t.Fatalf("etcdtest: %s: %s is not running", op, m.Name)
	}
}

func (m *Member) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("etcdtest: signal %v to %s: %v", sig, m.Name, err)
	}
}

// etcdEnv is the environment for etcd processes: ours minus ETCD_*, because
// etcd reads every flag from ETCD_<FLAG> variables too, and a stray one in a
// developer's shell would silently change the cluster.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}
