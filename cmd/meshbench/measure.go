//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// target is a server under load: how to reach it and how to read its CPU
// time and memory.
type target struct {
	Name  string // "meshdns", "nsd", "echo"
	Cores int    // GOMAXPROCS / server-count / echo readers
	Addr  string
	// Queries is its dnsperf input file, Probe the names the latency
	// probe asks (the same mix).
	Queries string
	Probe   []query
	CPU     func() time.Duration
	HWM     func() int64 // peak RSS, KiB; nil if not measurable
	Pids    func() []int // its processes, for perf; nil if not separate
	GCs     func() int   // garbage collections so far; nil if unknown
}

func procTarget(name string, cores int, p *proc, addr string, file string, mix []query) target {
	pid := p.Pid()
	return target{Name: name, Cores: cores, Addr: addr, Queries: file, Probe: mix,
		CPU:  func() time.Duration { return cpuTime(pid) },
		HWM:  func() int64 { return memKiB(pid, "VmHWM") },
		Pids: func() []int { return procTree(pid) }}
}

// meshdnsTarget is procTarget plus meshdns's GC count.
func meshdnsTarget(name string, cores int, m *meshdnsProc, file string, mix []query) target {
	t := procTarget(name, cores, m.proc, m.Addr, file, mix)
	t.GCs = m.gcCount
	return t
}

// result is one measured dnsperf run against one target.
type result struct {
	Target     target
	Load       load
	Round      int
	DP         perfResult // what dnsperf reported
	ServerCPU  time.Duration
	HostBusy   float64 // cores busy on the whole machine
	IRQ        float64 // of which in interrupts (packet delivery)
	P50, P99   time.Duration
	ProbeN     int
	ProbeLost  int
	PeakRSSKiB int64
	GCs        int // garbage collections during the run, -1 if unknown
	Retries    int // runs discarded before this one as too noisy
	Perf       *perfProfile
}

// CPUPer100k is the server's CPU seconds per 100,000 answered queries.
func (r result) CPUPer100k() float64 {
	n := r.DP.Completed + int64(r.ProbeN)
	if n == 0 {
		return 0
	}
	return r.ServerCPU.Seconds() / float64(n) * 1e5
}

// DnsperfCores is dnsperf's average CPU use in cores.
func (r result) DnsperfCores() float64 {
	if r.DP.RunTime <= 0 {
		return 0
	}
	return r.DP.CPU.Seconds() / r.DP.RunTime.Seconds()
}

// OtherCores is the CPU the rest of the machine used during the run: on
// a shared machine, a run with much of it is suspect.
func (r result) OtherCores() float64 {
	return max(0, r.HostBusy-r.IRQ-r.ServerCores()-r.DnsperfCores())
}

// ServerCores is the server's average CPU use in cores.
func (r result) ServerCores() float64 {
	if r.DP.RunTime <= 0 {
		return 0
	}
	return r.ServerCPU.Seconds() / r.DP.RunTime.Seconds()
}

// benchRun is what every measured run needs besides the target.
type benchRun struct {
	Dir      string // logs
	ProbeGap time.Duration
	Duration time.Duration
	Extra    []string // extra dnsperf arguments
}

// measure runs dnsperf with load l against t and reads the server's CPU
// time, the machine's CPU use and the probe around it.
// With profile, perf watches the server during the run (see perf.go).
func (b benchRun) measure(ctx context.Context, t target, l load, round int, profile bool) (result, error) {
	r := result{Target: t, Load: l, Round: round, GCs: -1}
	tag := strings.ReplaceAll(fmt.Sprintf("%s-%d-c%dq%d%s-r%d", t.Name, t.Cores, l.C, l.Q, l.T, round), " ", "-")
	gc0 := -1
	if t.GCs != nil {
		gc0 = t.GCs()
	}
	var ps *perfSession
	if profile {
		var err error
		if ps, err = startPerf(b.Dir, tag, t.Pids(), b.Duration); err != nil {
			return r, err
		}
		defer ps.kill()
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	cpu0, host0 := t.CPU(), readHostCPU()
	pr := startProbe(pctx, t.Addr, t.Probe, b.ProbeGap)
	var perf perfResult
	var err error
	switch l.T {
	case transportTCP1:
		perf, err = runTCP1(ctx, t.Addr, t.Probe, l, b.Duration)
	case "tcp":
		perf, err = runTCPPipelined(ctx, t.Addr, t.Probe, l, b.Duration)
	default:
		perf, err = runDnsperf(ctx, filepath.Join(b.Dir, "dnsperf-"+tag+".txt"), t.Addr, t.Queries, l, b.Duration, b.Extra)
	}
	stopProbe()
	pr.wait()
	cpu1, host1 := t.CPU(), readHostCPU()
	if err != nil {
		return r, err
	}
	r.DP = perf
	r.ServerCPU = cpu1 - cpu0
	r.HostBusy = busyCores(host0, host1, runtime.NumCPU())
	r.IRQ = irqCores(host0, host1, runtime.NumCPU())
	r.P50, r.P99 = pr.percentile(0.50), pr.percentile(0.99)
	r.ProbeN, r.ProbeLost = len(pr.rtts), pr.timeout
	if t.HWM != nil {
		r.PeakRSSKiB = t.HWM()
	}
	if gc0 >= 0 {
		r.GCs = t.GCs() - gc0
	}
	if ps != nil {
		prof, err := ps.wait(ctx, tag)
		if err != nil {
			return r, err
		}
		r.Perf = &prof
	}
	return r, nil
}
