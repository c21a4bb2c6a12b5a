//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// With --perf, one extra run per server is made under Linux perf: perf
// stat counts the server's system calls by kind and its context switches,
// perf record samples where its CPU time goes. The servers are the real
// binaries, unmodified. perf itself costs some throughput, so these runs
// are reported apart from the measured ones.

// syscallEvents are the system calls a UDP server's hot path makes.
var syscallEvents = []string{
	"recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg",
	"futex", "epoll_pwait", "epoll_wait", "nanosleep", "sched_yield", "read", "write",
}

// perfProfile is what perf found during one run.
type perfProfile struct {
	Syscalls   int64            // all system calls
	ByCall     map[string]int64 // of syscallEvents
	CtxSwitch  int64
	Migrations int64
	Top        []string // "12.3% dso [k] symbol", hottest first
	TopUser    []string // the same outside the kernel
	ByDSO      []string // "72.1% [kernel.kallsyms]", ...
	ReportPath string
}

type perfSession struct {
	stat, rec    *exec.Cmd // stat is nil for startPerfRecord
	statOut      string
	data         string
	dir          string
	untilStopped bool // perf runs until interrupted, not for a set time
}

// startPerf attaches perf stat and perf record to pids for dur.
func startPerf(dir, tag string, pids []int, dur time.Duration) (*perfSession, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, fmt.Errorf("--perf needs Linux perf (Debian package linux-perf): %w", err)
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	pidList := strings.Join(ps, ",")
	secs := strconv.FormatFloat(dur.Seconds(), 'f', 1, 64)
	s := &perfSession{statOut: filepath.Join(dir, "perf-stat-"+tag+".csv"), data: filepath.Join(dir, "perf-"+tag+".data"), dir: dir}
	events := []string{"raw_syscalls:sys_enter", "context-switches", "cpu-migrations"}
	for _, c := range syscallEvents {
		events = append(events, "syscalls:sys_enter_"+c)
	}
	s.stat = exec.Command("perf", "stat", "-x", ",", "-o", s.statOut, "-e", strings.Join(events, ","), "-p", pidList, "--", "sleep", secs)
	s.rec = exec.Command("perf", "record", "-q", "-F", "499", "-g", "-o", s.data, "-p", pidList, "--", "sleep", secs)
	for _, c := range []*exec.Cmd{s.stat, s.rec} {
		c.Stdout, c.Stderr = nil, nil
		if err := c.Start(); err != nil {
			s.kill()
			return nil, fmt.Errorf("start %s: %w", c, err)
		}
	}
	return s, nil
}

// startPerfRecord samples pid until wait is called: for phases of no
// known length, such as meshdns's start-up.
func startPerfRecord(dir, tag string, pid int) (*perfSession, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, fmt.Errorf("--perf needs Linux perf (Debian package linux-perf): %w", err)
	}
	s := &perfSession{data: filepath.Join(dir, "perf-"+tag+".data"), dir: dir, untilStopped: true}
	s.rec = exec.Command("perf", "record", "-q", "-F", "499", "-g", "-o", s.data, "-p", strconv.Itoa(pid))
	if err := s.rec.Start(); err != nil {
		return nil, fmt.Errorf("start perf record: %w", err)
	}
	return s, nil
}

func (s *perfSession) cmds() []*exec.Cmd {
	var out []*exec.Cmd
	for _, c := range []*exec.Cmd{s.stat, s.rec} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// kill stops perf early; harmless after wait.
func (s *perfSession) kill() {
	for _, c := range s.cmds() {
		if c.Process != nil && c.ProcessState == nil {
			_ = c.Process.Kill()
		}
	}
}

// wait waits for both perf commands and reads their results.
func (s *perfSession) wait(ctx context.Context, tag string) (perfProfile, error) {
	if s.untilStopped {
		_ = s.rec.Process.Signal(os.Interrupt) // perf record writes its data and exits
	}
	done := make(chan struct{})
	go func() {
		for _, c := range s.cmds() {
			_ = c.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.kill()
		<-done
		return perfProfile{}, errInterrupted
	}
	p := perfProfile{ByCall: map[string]int64{}}
	if s.stat != nil {
		if err := p.readStat(s.statOut); err != nil {
			return p, err
		}
	}
	p.ReportPath = filepath.Join(s.dir, "perf-report-"+tag+".txt")
	out, err := exec.Command("perf", "report", "-i", s.data, "--stdio", "--no-children",
		"--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.2").Output()
	if err != nil {
		return p, fmt.Errorf("perf report: %w", err)
	}
	_ = os.WriteFile(p.ReportPath, out, 0o644)
	p.Top, p.TopUser = topSymbols(string(out))
	if out, err := exec.Command("perf", "report", "-i", s.data, "--stdio", "--no-children",
		"--sort", "dso", "-g", "none", "--percent-limit", "1").Output(); err == nil {
		p.ByDSO = reportLines(string(out))
	}
	return p, nil
}

// topSymbols splits perf report lines ("12.3%  dso  [k]  symbol") into
// all of them and those outside the kernel (the server's own code and
// libraries), each hottest first.
func topSymbols(report string) (all, user []string) {
	for _, line := range reportLines(report) {
		all = append(all, line)
		if !strings.Contains(line, "[kernel.") {
			user = append(user, line)
		}
	}
	return all, user
}

// reportLines returns the sample lines of a perf report, spaces squeezed.
func reportLines(report string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || !strings.Contains(line, "%") {
			continue
		}
		line = strings.TrimSuffix(strings.Join(strings.Fields(line), " "), " - -")
		out = append(out, line)
	}
	return out
}

// readStat parses perf stat -x, output: value,unit,event,...
func (p *perfProfile) readStat(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue // "<not counted>" or a comment
		}
		switch ev := f[2]; {
		case ev == "raw_syscalls:sys_enter":
			p.Syscalls = n
		case ev == "context-switches":
			p.CtxSwitch = n
		case ev == "cpu-migrations":
			p.Migrations = n
		case strings.HasPrefix(ev, "syscalls:sys_enter_"):
			if n > 0 {
				p.ByCall[strings.TrimPrefix(ev, "syscalls:sys_enter_")] = n
			}
		}
	}
	return nil
}
