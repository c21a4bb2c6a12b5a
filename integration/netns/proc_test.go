package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/childproc"
)

// cmdTimeout bounds one short command (ip, meshctl, dig): on a loaded
// 2-core CI machine they take milliseconds, so hitting it means a hang.
const cmdTimeout = 30 * time.Second

// run runs a command to completion and returns its stdout; a failure
// fails the test with everything the command printed.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(stdin, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// tryRun is run that returns the failure instead.
func tryRun(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), nil
}

// daemon is a long-running process in a namespace, stopped at cleanup.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string // stdout and stderr
}

// startDaemon starts `ip netns exec ns name args...`. ip execs the program
// in place, so the process t.Cleanup stops is the program itself. Its
// output goes to a file whose tail is printed if the test fails.
func startDaemon(t testing.TB, ns, name string, args ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, ns, nil, name, args...)
}

// startDaemonEnv is startDaemon with variables added to the environment.
func startDaemonEnv(t testing.TB, ns string, env []string, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{log: filepath.Join(t.TempDir(), filepath.Base(name)+".log"), exited: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.Env = append(os.Environ(), env...)
	if err := childproc.Start(d.cmd); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			out, _ := os.ReadFile(d.log)
			t.Logf("output of %s in %s:\n%s", filepath.Base(name), ns, tail(string(out), 40))
		}
	})
	return d
}

// stop sends SIGTERM, and SIGKILL if the process has not exited after 10 s.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// waitOutput polls the output until it holds line.
func (d *daemon) waitOutput(line string, timeout time.Duration) error {
	return poll(timeout, func() error {
		if err := d.running(); err != nil {
			return err
		}
		out, _ := os.ReadFile(d.log)
		if !strings.Contains(string(out), line+"\n") {
			return fmt.Errorf("%s has not printed %q yet:\n%s", d.cmd.Path, line, tail(string(out), 20))
		}
		return nil
	})
}

// running reports an error if the process has already exited.
func (d *daemon) running() error {
	select {
	case <-d.exited:
		out, _ := os.ReadFile(d.log)
		return fmt.Errorf("%s exited: %v\n%s", d.cmd.Path, d.cmd.ProcessState, tail(string(out), 40))
	default:
		return nil
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// poll calls f until it returns nil or timeout passes, and returns f's last
// error then. Waiting for a daemon is polling, never a fixed sleep.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}
