//go:build linux

package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/meshdns/meshdns/registry"
)

// scaleConfig is `meshbench scale`.
type scaleConfig struct {
	Gen          genConfig // the big registry
	Base         genConfig // the comparison registry; Machines 0 skips it
	Loader       string
	Queries      int
	Rounds       int
	ReadyTimeout time.Duration
	Restart      bool          // also time a restart on the same --data-dir
	Settle       time.Duration // wait after ready before reading RSS
	// ReadyzWait bounds the wait for /readyz after the first complete
	// answer: a meshdns serving a local copy answers before etcd confirms it.
	ReadyzWait time.Duration
}

// baselinePrefix keeps the comparison registry apart from the big one in
// the same etcd, so both meshdns run (and are measured) side by side.
const baselinePrefix = "/meshbench-baseline/v1/"

// startup is how one meshdns came up.
type startup struct {
	Ready      time.Duration // process start → first complete answer
	Readyz     time.Duration // process start → /readyz 200 (0: no --http)
	LoadTook   time.Duration // what meshdns logged for its full load
	RSSKiB     int64         // VmRSS settle after ready
	HWMKiB     int64         // VmHWM then
	Settle     time.Duration
	Profile    *perfProfile // with --perf: where start-up CPU went
	HasReadyz  bool
	ReadyzWait time.Duration
	// CPU time used from process start to the first complete answer.
	MeshdnsCPU, EtcdCPU time.Duration
	EtcdLabel           string
}

func runScale(e *env, c scaleConfig) error {
	big, err := generate(c.Gen)
	if err != nil {
		return err
	}
	printRegistry(e, big)
	b, err := e.etcdServer()
	if err != nil {
		return err
	}
	ls, err := loadRegistry(e.ctx, b.Client, registry.DefaultPrefix, big, c.Loader)
	if err != nil {
		return err
	}
	e.progress("loaded %d keys with %s in %v (%.0f keys/s, etcd db %d MiB)", ls.Keys, ls.Loader,
		ls.Took.Round(time.Millisecond), float64(ls.Keys)/ls.Took.Seconds(), ls.DBSize>>20)
	runtime.GC() // the loader's copies are garbage now; keep meshbench small beside meshdns
	bin, err := e.meshdnsBin()
	if err != nil {
		return err
	}
	defer stopAll()
	o := big.Orgs[len(big.Orgs)/2]
	mix := makeMix(o, c.Queries, 1.1, c.Gen.Seed)
	file := e.path("queries-scale.txt")
	if err := writeMix(file, mix); err != nil {
		return err
	}
	cfg := meshdnsConfig{Bin: bin, Etcd: b.Endpoint, DefaultOrg: o.Name, Region: e.c.Region, DataDir: e.path("meshdns-scale"), Extra: e.meshdnsExtra()}
	md, st, err := e.startTimed(cfg, "meshdns (big)", mix, c.ReadyTimeout, c.Settle, c.ReadyzWait)
	if err != nil {
		return err
	}
	bigName := fmt.Sprintf("meshdns %d", c.Gen.Machines)
	targets := []target{meshdnsTarget(bigName, runtime.NumCPU(), md, file, mix)}

	var baseName string
	var baseLoad loadStats
	if c.Base.Machines > 0 {
		base, err := generate(c.Base)
		if err != nil {
			return err
		}
		if baseLoad, err = loadRegistry(e.ctx, b.Client, baselinePrefix, base, c.Loader); err != nil {
			return err
		}
		bmix := makeMix(base.Orgs[0], c.Queries, c.Base.ZipfS, c.Base.Seed)
		bfile := e.path("queries-baseline.txt")
		if err := writeMix(bfile, bmix); err != nil {
			return err
		}
		bcfg := meshdnsConfig{Bin: bin, Etcd: b.Endpoint, Prefix: baselinePrefix, DefaultOrg: base.Orgs[0].Name,
			Region: e.c.Region, DataDir: e.path("meshdns-baseline"), Extra: e.meshdnsExtra()}
		bmd, _, err := e.startTimed(bcfg, "meshdns (baseline)", bmix, c.ReadyTimeout, c.Settle, c.ReadyzWait)
		if err != nil {
			return err
		}
		baseName = fmt.Sprintf("meshdns %d", c.Base.Machines)
		targets = append(targets, meshdnsTarget(baseName, runtime.NumCPU(), bmd, bfile, bmix))
	}
	runs, profiled, err := e.measureAll(e.benchRun(), targets, c.Rounds)
	if err != nil {
		return err
	}
	rssAfter := memKiB(md.Pid(), "VmRSS")
	hwmAfter := memKiB(md.Pid(), "VmHWM")
	var restart *startup
	if c.Restart {
		md.Stop(10 * time.Second)
		_, rs, err := e.startTimed(cfg, "meshdns (big, restarted)", mix, c.ReadyTimeout, c.Settle, c.ReadyzWait)
		if err != nil {
			return err
		}
		restart = &rs
	}

	fmt.Fprintf(e.out, "\n## scale: %d machines in %d apps of %d orgs, queried as org %s\n\n",
		c.Gen.Machines, c.Gen.Apps, c.Gen.Orgs, o.Name)
	tw := newTable(e.out, "what", "value")
	fmt.Fprintf(tw, "etcd load (%s, %d keys)\t%v (%.0f keys/s), db %d MiB\t\n", ls.Loader, ls.Keys, ls.Took.Round(time.Millisecond), float64(ls.Keys)/ls.Took.Seconds(), ls.DBSize>>20)
	if baseName != "" {
		fmt.Fprintf(tw, "baseline load (%d keys)\t%v\t\n", baseLoad.Keys, baseLoad.Took.Round(time.Millisecond))
	}
	printStartup(tw, "start", st)
	fmt.Fprintf(tw, "RSS after the QPS runs\t%s MiB (peak %s MiB), %.0f bytes/machine\t\n", mib(rssAfter), mib(hwmAfter), float64(rssAfter)*1024/float64(c.Gen.Machines))
	if restart != nil {
		printStartup(tw, "restart, same --data-dir", *restart)
	}
	tw.Flush()
	fmt.Fprintln(e.out)
	printRuns(e.out, runs)
	if baseName != "" {
		fmt.Fprintln(e.out)
		tw = newTable(e.out, "dnsperf", "QPS "+bigName, "QPS "+baseName, "ratio (≥0.90)", "CPU/q ratio")
		for _, l := range e.loads {
			s1 := summarize(runs, bigName, runtime.NumCPU(), l)
			s2 := summarize(runs, baseName, runtime.NumCPU(), l)
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\t\n", l, s1.QPS, s2.QPS, ratio(s1.QPS, s2.QPS), ratio(s1.CPU, s2.CPU))
		}
		tw.Flush()
	}
	printProfiles(e.out, profiled)
	printStartupProfile(e.out, "start → first complete answer", st)
	if restart != nil {
		printStartupProfile(e.out, "restart → first complete answer", *restart)
	}
	return nil
}

// startTimed starts meshdns and measures how it came up.
func (e *env) startTimed(cfg meshdnsConfig, name string, mix []query, timeout, settle, readyzWait time.Duration) (*meshdnsProc, startup, error) {
	var st startup
	etcd0 := e.etcd.CPU()
	md, err := startMeshdns(cfg, name)
	if err != nil {
		return nil, st, err
	}
	var ps *perfSession
	tag := fmt.Sprintf("startup-%d", md.Pid())
	if e.c.Perf {
		// Where start-up time goes: etcd reads, decoding, building.
		if ps, err = startPerfRecord(e.dir, tag, md.Pid()); err != nil {
			return nil, st, err
		}
		defer ps.kill()
	}
	ready, err := waitAnswers(e.ctx, md.proc, md.Addr, firstOfEachKind(mix), timeout)
	if err != nil {
		return nil, st, err
	}
	st.Ready = ready.Sub(md.Started)
	// Where the wait went: meshdns's own CPU, and etcd's.
	st.MeshdnsCPU, st.EtcdCPU = cpuTime(md.Pid()), e.etcd.CPU()-etcd0
	st.EtcdLabel = e.etcd.Label()
	if ps != nil {
		prof, err := ps.wait(e.ctx, tag)
		if err != nil {
			return nil, st, err
		}
		st.Profile = &prof
	}
	if md.HTTP != "" {
		st.HasReadyz = true
		st.ReadyzWait = readyzWait
		if t, ok := md.waitReadyz(e.ctx, readyzWait); ok {
			st.Readyz = t.Sub(md.Started)
		} else {
			e.progress("%s: /readyz not 200 within %v of the first complete answer", name, readyzWait)
		}
	}
	st.LoadTook, _ = md.loadTook()
	st.Settle = settle
	// RSS settles once the load's garbage has been collected.
	time.Sleep(settle)
	st.RSSKiB, st.HWMKiB = memKiB(md.Pid(), "VmRSS"), memKiB(md.Pid(), "VmHWM")
	e.progress("%s: first complete answer %v after start (registry load logged %v; CPU meanwhile: meshdns %v, %s %v), RSS %s MiB, peak %s MiB",
		name, st.Ready.Round(time.Millisecond), st.LoadTook.Round(time.Millisecond), st.MeshdnsCPU.Round(10*time.Millisecond),
		st.EtcdLabel, st.EtcdCPU.Round(10*time.Millisecond), mib(st.RSSKiB), mib(st.HWMKiB))
	return md, st, nil
}

func printStartup(w io.Writer, what string, st startup) {
	fmt.Fprintf(w, "%s → first complete answer\t%v\t\n", what, st.Ready.Round(time.Millisecond))
	switch {
	case st.Readyz > 0:
		fmt.Fprintf(w, "%s → /readyz 200\t%v\t\n", what, st.Readyz.Round(time.Millisecond))
	case st.HasReadyz:
		fmt.Fprintf(w, "%s → /readyz 200\tnot within %v of the first answer\t\n", what, st.ReadyzWait)
	}
	if st.LoadTook > 0 {
		fmt.Fprintf(w, "  of which registry load (meshdns log)\t%v\t\n", st.LoadTook.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  CPU meanwhile: meshdns; %s\t%v; %v\t\n", st.EtcdLabel, st.MeshdnsCPU.Round(10*time.Millisecond), st.EtcdCPU.Round(10*time.Millisecond))
	fmt.Fprintf(w, "  RSS %v after ready\t%s MiB (peak %s MiB)\t\n", st.Settle, mib(st.RSSKiB), mib(st.HWMKiB))
}

// printStartupProfile prints where meshdns's CPU went during a phase
// (start-up, the propagation benchmark's changes).
func printStartupProfile(w io.Writer, what string, st startup) {
	p := st.Profile
	if p == nil {
		return
	}
	fmt.Fprintf(w, "\n%s: meshdns CPU samples (full report: %s)\n", what, p.ReportPath)
	fmt.Fprintf(w, "  by binary: %s\n", strings.Join(p.ByDSO, ", "))
	for _, line := range p.Top[:min(len(p.Top), 25)] {
		fmt.Fprintf(w, "    %s\n", line)
	}
}
