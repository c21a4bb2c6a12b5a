package etcdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/childproc"
)

// GRPCProxy is a real `etcd grpc-proxy start` process in front of a
// cluster: the way a fleet of thousands of clients shares one etcd
// cluster (the proxy coalesces their watches into one per key range).
// Like a Member, it reports problems with t.Fatal on the t it was started
// with, so call its methods from that test's goroutine.
type GRPCProxy struct {
	t testing.TB

	// Endpoint is the proxy's client URL; it stays the same across
	// restarts.
	Endpoint string
	// LogPath receives the proxy's output across all restarts.
	LogPath string

	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartGRPCProxy starts `bin grpc-proxy start` for the etcd members at
// endpoints, listening on a free port of 127.0.0.1, and waits until a
// linearizable read through it succeeds. t.Cleanup kills it; a failing
// test prints the tail of its log.
func StartGRPCProxy(t testing.TB, bin string, endpoints []string) *GRPCProxy {
	t.Helper()
	dir := t.TempDir()
	p := &GRPCProxy{t: t, LogPath: filepath.Join(dir, "proxy.log")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcdtest: grpc-proxy (%s) log, last %d lines:\n%s", p.Endpoint, logTailLines, logTail(p.LogPath, logTailLines))
		}
	})
	t.Cleanup(p.kill)
	for attempt := 1; ; attempt++ {
		port := FreePorts(t, 1)[0]
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p.Endpoint = "http://" + addr
		p.args = []string{bin, "grpc-proxy", "start",
			"--endpoints", strings.Join(endpoints, ","),
			"--listen-addr", addr,
			"--advertise-client-url", addr,
			"--data-dir", filepath.Join(dir, "data"),
		}
		err := p.launch()
		if err == nil {
			err = p.waitReady(time.Now().Add(readyTimeout))
		}
		if err == nil {
			return p
		}
		p.kill()
		if strings.Contains(logTail(p.LogPath, logTailLines), "address already in use") && attempt < portAttempts {
			t.Logf("etcdtest: grpc-proxy lost a port race, retrying: %v", err)
			continue
		}
		t.Fatalf("etcdtest: start grpc-proxy: %v", err)
	}
}

// Client returns a client that talks to the proxy only; t.Cleanup closes it.
func (p *GRPCProxy) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, []string{p.Endpoint})
}

// Stop shuts the proxy down (SIGTERM) and waits for it to exit, killing it
// after 15 s.
func (p *GRPCProxy) Stop() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("etcdtest: Stop: grpc-proxy is not running")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.kill()
		p.t.Errorf("etcdtest: grpc-proxy ignored SIGTERM for %v; killed it", stopTimeout)
	}
}

// Kill crashes the proxy (SIGKILL) and waits for it to exit.
func (p *GRPCProxy) Kill() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("etcdtest: Kill: grpc-proxy is not running")
	}
	p.kill()
}

// Start starts a stopped proxy again on the same address and waits until
// it serves reads.
func (p *GRPCProxy) Start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("etcdtest: Start: grpc-proxy is already running")
	}
	if err := p.launch(); err != nil {
		p.t.Fatalf("etcdtest: %v", err)
	}
	if err := p.waitReady(time.Now().Add(readyTimeout)); err != nil {
		p.t.Fatalf("etcdtest: %v", err)
	}
}

// Restart is Stop followed by Start.
func (p *GRPCProxy) Restart() {
	p.t.Helper()
	p.Stop()
	p.Start()
}

func (p *GRPCProxy) launch() error {
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "### etcdtest: starting grpc-proxy at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = etcdEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := childproc.Start(cmd); err != nil {
		return fmt.Errorf("start grpc-proxy: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// waitReady polls with linearizable reads through the proxy.
func (p *GRPCProxy) waitReady(deadline time.Time) error {
	cli, err := clientv3.New(clientConfig([]string{p.Endpoint}))
	if err != nil {
		return fmt.Errorf("client for grpc-proxy: %w", err)
	}
	defer cli.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "etcdtest-ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("grpc-proxy exited (%v); see its log", p.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("grpc-proxy at %s not serving reads by deadline: %w", p.Endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *GRPCProxy) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *GRPCProxy) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

var (
	flagsMu  sync.Mutex
	binFlags = map[string]string{} // binary → its --help output
)

// hasFlag reports whether the etcd binary bin knows --name (its --help
// lists it), so that one cluster helper runs several etcd releases.
func hasFlag(t testing.TB, bin, name string) bool {
	t.Helper()
	flagsMu.Lock()
	defer flagsMu.Unlock()
	help, ok := binFlags[bin]
	if !ok {
		// etcd 3.4 prints its help and exits 0; later releases too.
		out, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil && len(out) == 0 {
			t.Fatalf("etcdtest: %s --help: %v", bin, err)
		}
		help = string(out)
		binFlags[bin] = help
	}
	return strings.Contains(help, "--"+name+" ") || strings.Contains(help, "--"+name+"\n") ||
		strings.Contains(help, "--"+name+" '") || strings.Contains(help, "--"+name+"=")
}

// Version is what `bin --version` says of the etcd release ("3.4.23").
func Version(t testing.TB, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("etcdtest: %s --version: %v", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("etcdtest: %s --version printed no version:\n%s", bin, out)
	return ""
}

// ProgressNotifyFlag is the flag that sets how often bin's release sends
// watches unasked progress notifications (which a gRPC proxy forwards):
// --watch-progress-notify-interval from 3.6 on, the experimental one
// before.
func ProgressNotifyFlag(t testing.TB, bin string, d time.Duration) string {
	t.Helper()
	if hasFlag(t, bin, "watch-progress-notify-interval") {
		return "--watch-progress-notify-interval=" + d.String()
	}
	return "--experimental-watch-progress-notify-interval=" + d.String()
}
