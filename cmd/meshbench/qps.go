//go:build linux

package main

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/meshdns/meshdns/registry"
)

// qpsConfig is `meshbench qps`.
type qpsConfig struct {
	Gen     genConfig
	Loader  string
	Queries int   // lines in the dnsperf file
	Cores   []int // meshdns GOMAXPROCS = NSD server-count = echo readers
	Rounds  int
	Check   int  // distinct queries whose answers are verified on both servers
	NSD     bool // also measure NSD
	Strict  bool // fail if an answer is wrong
	// ReadyTimeout bounds the wait for meshdns's first complete answers.
	ReadyTimeout time.Duration
}

// qpsResult is what the qps benchmark found, for callers that go on
// (the scale benchmark compares with it).
type qpsResult struct {
	Runs       []result
	Mismatches int
}

func runQPS(e *env, c qpsConfig) (*qpsResult, error) {
	r, err := generate(c.Gen)
	if err != nil {
		return nil, err
	}
	printRegistry(e, r)
	b, err := e.etcdServer()
	if err != nil {
		return nil, err
	}
	ls, err := loadRegistry(e.ctx, b.Client, registry.DefaultPrefix, r, c.Loader)
	if err != nil {
		return nil, err
	}
	e.progress("loaded %d keys with %s in %v (etcd db %d MiB)", ls.Keys, ls.Loader, ls.Took.Round(time.Millisecond), ls.DBSize>>20)
	o := r.Orgs[0]
	mix := makeMix(o, c.Queries, c.Gen.ZipfS, c.Gen.Seed)
	file := e.path("queries.txt")
	if err := writeMix(file, mix); err != nil {
		return nil, err
	}
	sample := checkSample(mix, c.Check)
	bin, err := e.meshdnsBin()
	if err != nil {
		return nil, err
	}
	br := e.benchRun()
	res := &qpsResult{}
	for _, cores := range c.Cores {
		runs, bad, err := e.qpsCores(c, cores, b, bin, o, br, file, mix, sample)
		res.Runs = append(res.Runs, runs...)
		res.Mismatches += bad
		if err != nil {
			return res, err
		}
	}
	fmt.Fprintf(e.out, "\n## qps: %d machines in %d apps, %d orgs; mix of %d queries for org %s\n\n",
		c.Gen.Machines, c.Gen.Apps, c.Gen.Orgs, len(mix), o.Name)
	printRuns(e.out, res.Runs)
	fmt.Fprintln(e.out)
	printRatios(e.out, res.Runs, c.Cores, e.loads)
	printProfiles(e.out, e.profiled)
	fmt.Fprintf(e.out, "\nanswers checked: %d distinct queries per server over TCP, %d wrong\n", len(sample), res.Mismatches)
	if c.Strict && res.Mismatches > 0 {
		return res, fmt.Errorf("%d answers differ from what SPEC says (see above)", res.Mismatches)
	}
	return res, nil
}

// qpsCores measures the echo baseline, meshdns with GOMAXPROCS=cores and
// NSD with server-count=cores, side by side. It returns the runs and how
// many checked answers were wrong.
func (e *env) qpsCores(c qpsConfig, cores int, b *benchEtcd, bin string, o *org, br benchRun, file string, mix, sample []query) ([]result, int, error) {
	defer stopAll()
	echo, err := startEcho(cores)
	if err != nil {
		return nil, 0, err
	}
	defer echo.Close()
	targets := []target{{Name: "echo", Cores: cores, Addr: echo.Addr(), Queries: file, Probe: mix, CPU: echo.CPU}}
	md, err := startMeshdns(meshdnsConfig{Bin: bin, Etcd: b.Endpoint, DefaultOrg: o.Name, Region: e.c.Region,
		DataDir: e.path(fmt.Sprintf("meshdns-%d", cores)), GoMaxProcs: cores, Extra: e.meshdnsExtra()}, fmt.Sprintf("meshdns (GOMAXPROCS=%d)", cores))
	if err != nil {
		return nil, 0, err
	}
	ready, err := waitAnswers(e.ctx, md.proc, md.Addr, firstOfEachKind(sample), c.ReadyTimeout)
	if err != nil {
		return nil, 0, err
	}
	e.progress("%s answering at %s after %v", md.Name, md.Addr, ready.Sub(md.Started).Round(time.Millisecond))
	bad, err := e.verify(md.Name, md.Addr, sample)
	if err != nil {
		return nil, bad, err
	}
	targets = append(targets, meshdnsTarget("meshdns", cores, md, file, mix))
	if c.NSD {
		np, addr, err := startNSD(e.ctx, e.path(fmt.Sprintf("nsd-%d", cores)), o, e.c.TTL, cores)
		if err != nil {
			return nil, bad, err
		}
		e.progress("%s answering at %s", np.Name, addr)
		n, err := e.verify(np.Name, addr, sample)
		bad += n
		if err != nil {
			return nil, bad, err
		}
		targets = append(targets, procTarget("nsd", cores, np, addr, file, mix))
	}
	runs, profiled, err := e.measureAll(br, targets, c.Rounds)
	e.profiled = append(e.profiled, profiled...)
	return runs, bad, err
}

// measureAll warms each target, then runs every load rounds times,
// alternating the order of the targets each round (A B C, C B A, ...) so
// that drift in a noisy machine's speed hits all of them alike. With
// --perf, one more run per server and load is made under perf; those are
// returned apart, as perf slows the server down.
func (e *env) measureAll(br benchRun, targets []target, rounds int) (runs, profiled []result, err error) {
	for _, t := range targets {
		if err := e.warm(br, t); err != nil {
			return nil, nil, fmt.Errorf("warm-up of %s: %w", t.Name, err)
		}
	}
	for _, l := range e.loads {
		for round := 1; round <= rounds; round++ {
			order := slices.Clone(targets)
			if round%2 == 0 {
				slices.Reverse(order)
			}
			for _, t := range order {
				if !t.speaks(l) {
					continue
				}
				r, err := e.measureOne(br, t, l, round, false)
				if err != nil {
					return runs, profiled, err
				}
				runs = append(runs, r)
			}
		}
		if !e.c.Perf {
			continue
		}
		for _, t := range targets {
			if t.Pids == nil || !t.speaks(l) {
				continue // in-process echo: nothing separate to attach to
			}
			r, err := e.measureOne(br, t, l, 0, true)
			if err != nil {
				return runs, profiled, err
			}
			profiled = append(profiled, r)
		}
	}
	return runs, profiled, nil
}

// measureOne waits for the machine to be quiet, then measures one run,
// again (up to --retries times) if the rest of the machine used more than
// --noisy cores meanwhile.
func (e *env) measureOne(br benchRun, t target, l load, round int, profile bool) (result, error) {
	var r result
	for try := 0; ; try++ {
		e.waitQuiet()
		var err error
		r, err = br.measure(e.ctx, t, l, round, profile)
		if err != nil {
			return r, fmt.Errorf("%s (%d cores) with %s: %w", t.Name, t.Cores, l, err)
		}
		r.Retries = try
		if e.c.Noisy <= 0 || r.OtherCores() <= e.c.Noisy || try >= e.c.Retries {
			break
		}
		e.progress("%-7s cores=%d %s: others used %.2f cores during the run (%.0f QPS); measuring again",
			t.Name, t.Cores, l, r.OtherCores(), r.DP.QPS)
	}
	what := fmt.Sprintf("round %d", round)
	if profile {
		what = "under perf"
	}
	e.progress("%-7s cores=%d %s %s: %.0f QPS, avg %s ms, p99* %s ms, %.3f CPU s/100k, other load %.2f cores",
		t.Name, t.Cores, l, what, r.DP.QPS, ms(r.DP.AvgLatency), ms(r.P99), r.CPUPer100k(), r.OtherCores())
	return r, nil
}

// waitQuiet lets the previous run's sockets drain, then, on a shared
// machine, waits (up to --quiet-max) until the rest of the machine uses
// less than --quiet cores, so a run does not start in someone's build.
func (e *env) waitQuiet() {
	time.Sleep(time.Second)
	if e.c.Quiet <= 0 {
		return
	}
	deadline := time.Now().Add(e.c.QuietMax)
	for {
		h0 := readHostCPU()
		time.Sleep(time.Second)
		busy := busyCores(h0, readHostCPU(), runtime.NumCPU())
		if busy < e.c.Quiet || e.ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			e.progress("machine still busy (%.2f cores used by others); measuring anyway", busy)
			return
		}
	}
}

// verify checks sample's answers at addr and returns how many are wrong.
func (e *env) verify(name, addr string, sample []query) (int, error) {
	n, notes, err := checkAnswers(e.ctx, addr, sample)
	if err != nil {
		return n, fmt.Errorf("check answers of %s: %w", name, err)
	}
	if n > 0 {
		e.progress("%s: %d of %d answers differ from SPEC; first: %v", name, n, len(sample), notes)
	} else {
		e.progress("%s: %d answers as SPEC says", name, len(sample))
	}
	return n, nil
}

// checkSample picks the first n distinct queries of the mix.
func checkSample(mix []query, n int) []query {
	seen := map[string]bool{}
	var out []query
	for _, q := range mix {
		if len(out) >= n {
			break
		}
		if k := q.String(); !seen[k] {
			seen[k] = true
			out = append(out, q)
		}
	}
	return out
}

// firstOfEachKind returns the first query of each kind in qs.
func firstOfEachKind(qs []query) []query {
	var out []query
	kinds := map[string]bool{}
	for _, q := range qs {
		if !kinds[q.Kind] {
			kinds[q.Kind] = true
			out = append(out, q)
		}
	}
	return out
}

// printRegistry describes a generated registry.
func printRegistry(e *env, r *reg) {
	apps, most, started := 0, 0, 0
	for _, o := range r.Orgs {
		for _, a := range o.Apps {
			apps++
			most = max(most, len(a.Machines))
			started += len(a.startedIn(""))
		}
	}
	n := r.machineCount()
	e.progress("registry: %d orgs, %d apps, %d machines (%d started), largest app %d machines", len(r.Orgs), apps, n, started, most)
}
