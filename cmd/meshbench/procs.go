//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Every child meshbench starts (meshdns, nsd, dnsperf) runs in its own
// process group, so killing the group also kills what it forked (NSD's
// server processes). Pdeathsig covers meshbench itself being SIGKILLed;
// killAll covers every other exit, including an interrupt.

var (
	procsMu sync.Mutex
	procs   = map[*proc]struct{}{}
)

// proc is a started child process.
type proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // its stdout and stderr
	Started time.Time
	done    chan struct{}
	err     error // exit status, valid after done is closed
	once    sync.Once
	// shared marks a process that outlives benchmark phases (an etcd):
	// stopAll leaves it to its owner; killAll does not.
	shared bool
}

// startProc starts argv with output to logPath and extra environment.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	procsMu.Lock()
	defer procsMu.Unlock()
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	procs[p] = struct{}{}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop asks the process group to end (SIGTERM), then kills it after
// grace. Safe to call more than once.
func (p *proc) Stop(grace time.Duration) {
	p.once.Do(func() {
		pgid := -p.Pid()
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		// The group may outlive its leader (forked children): always kill.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
	})
}

// LogTail returns the last n lines of the process's output.
func (p *proc) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// errExited describes a process that ended when it should be running.
func (p *proc) errExited() error {
	if ok, err := p.Exited(); ok {
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.Name, err, p.LogPath, p.LogTail(15))
	}
	return nil
}

// killAll kills every process group still running, at once: it is for
// interrupts, when waiting politely is not wanted.
func killAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for p := range procs {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
}

// stopAll stops every process still running, politely, except shared ones.
func stopAll() {
	procsMu.Lock()
	list := make([]*proc, 0, len(procs))
	for p := range procs {
		if !p.shared {
			list = append(list, p)
		}
	}
	procsMu.Unlock()
	for _, p := range list {
		p.Stop(3 * time.Second)
	}
}

var errInterrupted = errors.New("interrupted")
