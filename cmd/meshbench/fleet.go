//go:build linux

package main

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"

	"github.com/meshdns/meshdns/registry"
)

// fleetConfig is `meshbench fleet`.
type fleetConfig struct {
	Gen     genConfig
	Hosts   []int // fleet sizes
	Proxies []int // proxy counts (0: hosts watch the members directly)
	Writes  []int // writes per second
	Meshdns int   // meshdns processes answering DNS, checked end to end
	// DNSEvery: every DNSEvery-th write changes a machine of the org the
	// meshdns processes answer loopback queries for, and is checked in DNS.
	DNSEvery int
	Late     time.Duration // a delivery later than this counts as late
	Drain    time.Duration // after the last write, wait this long at most for deliveries; then they are lost
	Herd     bool          // restart herds, with local copies and without
	// WatchOnly hosts watch but decode and apply nothing (see hostConfig).
	WatchOnly    bool
	ReadyTimeout time.Duration // bound on meshdns's start and on the hosts' first start
	HerdTimeout  time.Duration // a herd not all current by then is reported as it stands
	JSON         bool
	Plot         string // SVG path, or ""
	// IdleWindow is how long each row first measures etcd with nothing
	// written (0: 3 s).
	IdleWindow time.Duration
	// Strict fails the run if any delivery was lost (the smoke test).
	Strict bool
	// ReadyHeap touches heap room for each row's garbage before the row
	// (readyHeap): the hosts' shared heap in the steady state a host's
	// own reaches after its first collection.
	ReadyHeap bool
}

// fleet is one run of `meshbench fleet`.
type fleet struct {
	e       *env
	c       fleetConfig
	cl      *fleetCluster
	proxies []*grpcProxy
	w       *registry.Writer
	prefix  string
	track   atomic.Pointer[fleetTracker]

	mu       sync.Mutex // guards rng, machine state, seq
	rng      *rand.Rand
	all      []*machine
	dnsOrg   []*machine
	seq      int
	mdAddr   []string // DNS addresses of the running meshdns processes
	rows     []fleetRow
	herdRows []herdRow
}

func runFleet(e *env, c fleetConfig) error {
	r, err := generate(c.Gen)
	if err != nil {
		return err
	}
	printRegistry(e, r)
	bin, err := fleetEtcdBinary(e.c.Etcd)
	if err != nil {
		return err
	}
	cl, err := startFleetCluster(e.ctx, e.dir, bin, 3)
	if err != nil {
		return err
	}
	defer cl.Close()
	e.progress("etcd cluster of 3 members (%s) at %v", bin, cl.Endpoints)
	f := &fleet{e: e, c: c, cl: cl, prefix: registry.DefaultPrefix, rng: rand.New(rand.NewPCG(c.Gen.Seed, 0x666c656574))}
	f.w = registry.NewWriter(cl.Client, f.prefix)
	ls, err := loadRegistry(e.ctx, cl.Client, f.prefix, r, loaderTxn)
	if err != nil {
		return err
	}
	e.progress("loaded %d keys in %v (etcd db %d MiB)", ls.Keys, ls.Took.Round(time.Millisecond), ls.DBSize>>20)
	for _, o := range r.Orgs {
		for _, a := range o.Apps {
			f.all = append(f.all, a.Machines...)
			if o == r.Orgs[0] {
				f.dnsOrg = append(f.dnsOrg, a.Machines...)
			}
		}
	}
	mbin, err := e.meshdnsBin()
	if err != nil {
		return err
	}
	defer stopAll()
	defer f.stopProxies()
	for _, p := range c.Proxies {
		if err := f.runProxies(r.Orgs[0], mbin, p); err != nil {
			return err
		}
	}
	if !c.JSON {
		what := "each host its own etcd client, registry.Store and registry.Syncer"
		if c.WatchOnly {
			what = "watch-only hosts: each its own etcd client and watch, applying nothing"
		}
		fmt.Fprintf(e.out, "\n## fleet: %d machines in %d apps of %d orgs; 3 etcd members; %s; %v of writes per row\n\n",
			c.Gen.Machines, c.Gen.Apps, c.Gen.Orgs, what, e.c.Duration)
		printFleetRows(e.out, f.rows)
		fmt.Fprintf(e.out, "\np50/p99/max: write return → the last host applied it; DNS: write return → each of %d meshdns answers with it (1 write in %d);\nlost: deliveries (write × receiver) not seen within %v; late: seen after %v. bench cores: meshbench (hosts, writer, pollers); idle: the machine's (%d cores).\n",
			c.Meshdns, c.DNSEvery, c.Drain, c.Late, runtime.NumCPU())
		if len(f.herdRows) > 0 {
			fmt.Fprintf(e.out, "\n## herd: every host restarts at once; all current = every host at etcd's revision of the restart\n\n")
			printHerdRows(e.out, f.herdRows)
		}
	}
	if c.Strict {
		for _, r := range f.rows {
			if r.Lost > 0 {
				return fmt.Errorf("%d hosts, %d proxies, %d writes/s: %d deliveries lost", r.Hosts, r.Proxies, r.WritesPerS, r.Lost)
			}
		}
	}
	if c.Plot != "" {
		if err := writePlot(c.Plot, f.rows); err != nil {
			return err
		}
		e.progress("plot written to %s", c.Plot)
	}
	return nil
}

// runProxies runs every fleet size with p proxies (0: direct to members).
func (f *fleet) runProxies(o *org, mbin string, p int) error {
	e := f.e
	f.stopProxies()
	eps := f.cl.Endpoints
	if p > 0 {
		for i := range p {
			g, err := startGRPCProxy(e.ctx, f.cl, e.dir, i)
			if err != nil {
				return err
			}
			f.proxies = append(f.proxies, g)
			e.progress("grpc-proxy %d at %s", i, g.Endpoint)
		}
		eps = nil
		for _, g := range f.proxies {
			eps = append(eps, g.Endpoint)
		}
	}
	var mds []*meshdnsProc
	defer func() {
		for _, md := range mds {
			md.Stop(3 * time.Second)
		}
	}()
	mix := firstOfEachKind(makeMix(o, 200, 1.1, f.c.Gen.Seed))
	for j := range f.c.Meshdns {
		md, err := startMeshdns(meshdnsConfig{Bin: mbin, Etcd: eps[j%len(eps)], DefaultOrg: o.Name, Region: e.c.Region,
			DataDir: e.path(fmt.Sprintf("meshdns-p%d-%d", p, j)), Extra: e.meshdnsExtra()}, fmt.Sprintf("meshdns %d", j))
		if err != nil {
			return err
		}
		mds = append(mds, md)
	}
	for _, md := range mds {
		if _, err := waitAnswers(e.ctx, md.proc, md.Addr, mix, f.c.ReadyTimeout); err != nil {
			return err
		}
	}
	e.progress("%d proxies: %d meshdns answering", p, len(mds))
	f.mdAddr = nil
	for _, md := range mds {
		f.mdAddr = append(f.mdAddr, md.Addr)
	}
	for _, n := range f.c.Hosts {
		if err := f.runHosts(eps, mds, p, n); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) stopProxies() {
	for _, g := range f.proxies {
		g.Stop(3 * time.Second)
	}
	f.proxies = nil
}

// runHosts starts n hosts (the cold herd), measures every write rate, and
// restarts them from local copies (the warm herd).
func (f *fleet) runHosts(eps []string, mds []*meshdnsProc, p, n int) error {
	e := f.e
	// The first start is ramped: a cold herd of many hosts on this small
	// machine may not converge at all (measured at the end).
	t0 := time.Now()
	hosts, _, err := f.herd(eps, p, n, "", nil, rampHosts)
	defer func() { stopHosts(hosts) }()
	if err != nil {
		return err
	}
	e.progress("%d hosts current (started %d at a time) in %v", n, rampHosts, time.Since(t0).Round(time.Millisecond))
	for _, w := range f.c.Writes {
		row, err := f.row(hosts, mds, p, w)
		if err != nil {
			return err
		}
		f.rows = append(f.rows, row)
		if f.c.JSON {
			printJSONRow(e.out, row)
		}
		e.progress("hosts %d, proxies %d, %d writes/s: p50 %.1f ms, p99 %.1f ms, max %.1f ms, DNS p99 %.1f ms, lost %d, late %d; etcd %.2f ms/write (leader %.2f), proxies %.2f ms/write; bench %.2f cores, idle %.2f; load %s",
			n, p, w, row.P50ms, row.P99ms, row.MaxMs, row.DNSP99ms, row.Lost, row.Late, row.EtcdCPUmsPerWrite, row.EtcdLeaderCPUmsPerWrite,
			row.ProxyCPUmsPerWrite, row.HostsCores, row.IdleCores, row.Load)
	}
	if !f.c.Herd {
		return nil
	}
	// The warm herd: every host saves its local copy, all stop, the
	// registry changes meanwhile, and all start again from their copies.
	dir := e.path(fmt.Sprintf("copies-p%d-n%d", p, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	t0 = time.Now()
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for _, h := range hosts {
		if f.c.WatchOnly {
			break // their "copy" is the revision they resume from
		}
		g.Go(func() error { return h.saveCopy(copyPath(dir, h.i), f.prefix) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("save local copies: %w", err)
	}
	e.progress("%d local copies written in %v", n, time.Since(t0).Round(time.Millisecond))
	revs := make([]int64, len(hosts))
	for i, h := range hosts {
		revs[i] = h.rev.Load()
	}
	stopHosts(hosts)
	hosts = nil
	runtime.GC()
	// Changes while the fleet is down: what the restarted watches replay.
	for range max(10, f.c.Writes[0]*2) {
		if _, err := f.writeOne(nil, false); err != nil {
			return err
		}
	}
	hosts, hr, err := f.herd(eps, p, n, dir, revs, 0)
	if err != nil {
		return err
	}
	f.addHerd(hr)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	// The cold herd: all restart at once without local copies.
	stopHosts(hosts)
	hosts = nil
	runtime.GC()
	for range max(10, f.c.Writes[0]*2) {
		if _, err := f.writeOne(nil, false); err != nil {
			return err
		}
	}
	hosts, hr, err = f.herd(eps, p, n, "", nil, 0)
	if err != nil {
		return err
	}
	f.addHerd(hr)
	return nil
}

// rampHosts is how many hosts start at a time on the fleet's first start.
const rampHosts = 50

func copyPath(dir string, i int) string { return fmt.Sprintf("%s/host-%d.copy", dir, i) }

func (f *fleet) addHerd(hr herdRow) {
	f.herdRows = append(f.herdRows, hr)
	if f.c.JSON {
		printJSONRow(f.e.out, hr)
	}
	f.e.progress("herd of %d hosts, %d proxies, local copies %t: %d current, all current after %.2f s (copies read in %.2f s first), %d bytes read (%d per host), etcd peak %.2f cores, %.0f MiB; load %s",
		hr.Hosts, hr.Proxies, hr.Copies, hr.CurrentHosts, hr.AllCurrentS, hr.CopiesReadS, hr.BytesRead, hr.BytesPerHost, hr.EtcdPeakCores, hr.EtcdPeakRSSMiB, hr.Load)
}

func stopHosts(hosts []*fleetHost) {
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); h.stop() }()
	}
	wg.Wait()
}

// cpuMark is the CPU time of each part at one moment.
type cpuMark struct {
	at      time.Time
	members []time.Duration
	proxies time.Duration
	self    time.Duration
	host    hostCPU
}

func (f *fleet) mark() cpuMark {
	t0 := time.Now()
	m := cpuMark{self: pidCPU(os.Getpid()), host: readHostCPU()}
	for _, p := range f.cl.Members {
		m.members = append(m.members, pidCPU(p.Pid()))
	}
	for _, g := range f.proxies {
		m.proxies += pidCPU(g.Pid())
	}
	// The reads take a while on a busy machine: stamp their middle.
	m.at = t0.Add(time.Since(t0) / 2)
	return m
}

func (m cpuMark) etcd() time.Duration {
	var t time.Duration
	for _, d := range m.members {
		t += d
	}
	return t
}

func (f *fleet) rss() (etcd, proxies int64) {
	for _, p := range f.cl.Members {
		etcd += pidRSSKiB(p.Pid())
	}
	for _, g := range f.proxies {
		proxies += pidRSSKiB(g.Pid())
	}
	return etcd, proxies
}

func idleCores(a, b hostCPU) float64 {
	return float64(runtime.NumCPU()) - busyCores(a, b, runtime.NumCPU())
}

// herd starts n hosts at once, from local copies in dir (read before the
// clock starts) or cold, and times until every host is at etcd's
// revision of the start.
//
// With ramp > 0 the hosts start ramp at a time, each group once the one
// before is current: the fleet's first start, which is not measured.
func (f *fleet) herd(eps []string, p, n int, dir string, revs []int64, ramp int) ([]*fleetHost, herdRow, error) {
	e := f.e
	hr := herdRow{Kind: "herd", Hosts: n, Proxies: p, Copies: dir != "", WatchOnly: f.c.WatchOnly}
	hosts := make([]*fleetHost, n)
	t0 := time.Now()
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for i := range n {
		g.Go(func() error {
			hc := hostConfig{Endpoint: eps[i%len(eps)], Prefix: f.prefix, Track: &f.track, WatchOnly: f.c.WatchOnly}
			switch {
			case dir != "" && f.c.WatchOnly:
				hc.StartRev = revs[i]
			case dir != "":
				hc.Copy = copyPath(dir, i)
			}
			h, err := newFleetHost(i, hc)
			hosts[i] = h
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nonNil(hosts), hr, fmt.Errorf("prepare hosts: %w", err)
	}
	hr.CopiesReadS = time.Since(t0).Seconds()
	runtime.GC()
	target, err := f.cl.Revision(e.ctx, f.prefix)
	if err != nil {
		return hosts, hr, err
	}
	if dir != "" {
		hr.Replayed = target - hosts[0].rev.Load()
	}
	// Sample etcd's CPU and memory through the herd for their peaks (CPU
	// time is counted in 10 ms ticks: 250 ms windows keep that error small).
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		prev := f.mark()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			m := f.mark()
			if m.at.Sub(prev.at) < 200*time.Millisecond {
				continue // a tick delayed behind another: too short a window
			}
			hr.EtcdPeakCores = max(hr.EtcdPeakCores, (m.etcd()-prev.etcd()).Seconds()/m.at.Sub(prev.at).Seconds())
			rss, _ := f.rss()
			hr.EtcdPeakRSSMiB = max(hr.EtcdPeakRSSMiB, float64(rss)/1024)
			prev = m
		}
	}()
	m0 := f.mark()
	start := time.Now()
	timeout := f.c.HerdTimeout
	if ramp > 0 {
		timeout = f.c.ReadyTimeout
	}
	deadline := start.Add(timeout)
	// current counts the started hosts at the target revision.
	current := func(upTo int) int {
		k := 0
		for _, h := range hosts[:upTo] {
			if h.rev.Load() >= target {
				k++
			}
		}
		return k
	}
	step := n
	if ramp > 0 {
		step = ramp
	}
	lastNote := time.Now()
	for started := 0; started < n; {
		if ramp > 0 && time.Since(lastNote) > 10*time.Second {
			e.progress("%d of %d hosts started and current", started, n)
			lastNote = time.Now()
		}
		next := min(n, started+step)
		for _, h := range hosts[started:next] {
			h.start(e.ctx)
		}
		started = next
		for current(started) < started {
			if e.ctx.Err() != nil {
				close(stopSampling)
				return hosts, hr, errInterrupted
			}
			if time.Now().After(deadline) {
				if ramp > 0 {
					close(stopSampling)
					return hosts, hr, fmt.Errorf("%d hosts: %d of %d started not at revision %d after %v", n, started-current(started), started, target, timeout)
				}
				// A herd that does not converge is a result, not an error.
				hr.CurrentHosts = current(n)
				hr.AllCurrentS = -1
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if hr.AllCurrentS < 0 {
			break
		}
	}
	if hr.AllCurrentS == 0 {
		hr.AllCurrentS = time.Since(start).Seconds()
		hr.CurrentHosts = n
	}
	m1 := f.mark()
	close(stopSampling)
	<-sampled
	// A herd shorter than one sampling interval: its average is its peak.
	hr.EtcdPeakCores = max(hr.EtcdPeakCores, (m1.etcd()-m0.etcd()).Seconds()/m1.at.Sub(m0.at).Seconds())
	rss, _ := f.rss()
	hr.EtcdPeakRSSMiB = max(hr.EtcdPeakRSSMiB, float64(rss)/1024)
	for _, h := range hosts {
		hr.BytesRead += h.read.Load()
	}
	hr.BytesPerHost = hr.BytesRead / int64(n)
	hr.EtcdCPUs = (m1.etcd() - m0.etcd()).Seconds()
	hr.ProxyCPUs = (m1.proxies - m0.proxies).Seconds()
	hr.HostsCPUs = (m1.self - m0.self).Seconds()
	hr.IdleCores = idleCores(m0.host, m1.host)
	hr.Load = loadAvg()
	return hosts, hr, nil
}

// syncerCounts sums the hosts' watch restarts and full loads.
func syncerCounts(hosts []*fleetHost) (restarts, loads uint64) {
	for _, h := range hosts {
		if h.watchOnly {
			continue
		}
		st := h.syncer.Status()
		restarts += st.WatchRestarts
		loads += st.Loads
	}
	return restarts, loads
}

func nonNil(hs []*fleetHost) []*fleetHost {
	var out []*fleetHost
	for _, h := range hs {
		if h != nil {
			out = append(out, h)
		}
	}
	return out
}

// row writes at w writes per second for the run's duration and measures
// how the writes reached every host and meshdns.
func (f *fleet) row(hosts []*fleetHost, mds []*meshdnsProc, p, w int) (fleetRow, error) {
	e := f.e
	tr := newFleetTracker(len(hosts), len(mds))
	f.track.Store(tr)
	defer f.track.Store(nil)
	leader := f.cl.Leader(e.ctx)
	// The hosts share one heap: collect the garbage of their start (or of
	// the row before) now, not during the row. A real host collects its
	// own few megabytes as it goes; here a collection of all N hosts'
	// heaps at once would land in the measured writes, with its write
	// barriers slowing every apply while it marks.
	var readied int64
	if f.c.ReadyHeap {
		t0 := time.Now()
		readied = readyHeapForRow(int64(len(hosts)) * int64(w) * int64(e.c.Duration/time.Second+1))
		e.progress("readied %d MiB of heap for the row in %v", readied>>20, time.Since(t0).Round(time.Millisecond))
	} else {
		runtime.GC()
	}
	// etcd's CPU with the fleet connected but nothing written: heartbeats,
	// and the hosts' progress requests and stall checks.
	i0 := f.mark()
	select {
	case <-e.ctx.Done():
		return fleetRow{}, errInterrupted
	case <-time.After(cmp.Or(f.c.IdleWindow, 3*time.Second)):
	}
	i1 := f.mark()
	idleEtcd := (i1.etcd() - i0.etcd()).Seconds() / i1.at.Sub(i0.at).Seconds()
	idleLeader := 0.0
	if leader >= 0 {
		idleLeader = (i1.members[leader] - i0.members[leader]).Seconds() / i1.at.Sub(i0.at).Seconds()
	}
	var ev0 int64
	for _, h := range hosts {
		ev0 += h.events.Load()
	}
	restarts0, loads0 := syncerCounts(hosts)
	profilePhase(fmt.Sprintf("row-h%d-p%d-w%d", len(hosts), p, w))
	defer profilePhase("after")
	m0 := f.mark()
	alloc0, gc0, faults0 := heapAllocs(), gcCycles(), minorFaults()
	interval := time.Second / time.Duration(w)
	tick := time.NewTicker(interval)
	end := time.Now().Add(e.c.Duration)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var writeErr atomic.Pointer[error]
	for time.Now().Before(end) {
		select {
		case <-e.ctx.Done():
			tick.Stop()
			wg.Wait()
			return fleetRow{}, errInterrupted
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			// 64 writes in flight: etcd is not keeping up; the row's
			// write count shows the shortfall.
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := f.writeOne(tr, len(mds) > 0); err != nil {
				writeErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	if perr := writeErr.Load(); perr != nil {
		return fleetRow{}, *perr
	}
	written := time.Now()
	for tr.outstanding() > 0 && time.Since(written) < f.c.Drain && e.ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	m1 := f.mark()
	alloc1, gc1, faults1 := heapAllocs(), gcCycles(), minorFaults()
	// DNS pollers give up at Drain after their write; wait for them.
	tr.dnsWG.Wait()
	var ev1 int64
	for _, h := range hosts {
		ev1 += h.events.Load()
	}
	for _, md := range mds {
		if err := md.errExited(); err != nil {
			return fleetRow{}, err
		}
	}
	st := computeFleetStats(tr.samples(), len(hosts), f.c.Late)
	row := newFleetRow(st)
	restarts1, loads1 := syncerCounts(hosts)
	row.WatchRestarts, row.Loads = restarts1-restarts0, loads1-loads0
	row.Hosts, row.Proxies, row.WritesPerS, row.WatchOnly = len(hosts), p, w, f.c.WatchOnly
	secs := m1.at.Sub(m0.at).Seconds()
	row.Seconds = secs
	row.EventsPerS = float64(ev1-ev0) / secs
	row.HeapReadiedMiB = float64(readied) / (1 << 20)
	row.GCCycles, row.PageFaults = gc1-gc0, faults1-faults0
	if ev1 > ev0 {
		row.AllocBytesPerEvent = float64(alloc1-alloc0) / float64(ev1-ev0)
	}
	if st.Writes > 0 {
		per := func(d time.Duration) float64 { return float64(d) / 1e6 / float64(st.Writes) }
		row.EtcdCPUmsPerWrite = per(m1.etcd() - m0.etcd())
		if leader >= 0 {
			row.EtcdLeaderCPUmsPerWrite = per(m1.members[leader] - m0.members[leader])
		}
		row.ProxyCPUmsPerWrite = per(m1.proxies - m0.proxies)
		net := func(cpu time.Duration, idle float64) float64 {
			return max(0, (cpu.Seconds()-idle*secs)*1e3/float64(st.Writes))
		}
		row.EtcdNetCPUmsPerWrite = net(m1.etcd()-m0.etcd(), idleEtcd)
		if leader >= 0 {
			row.EtcdLeaderNetCPUmsPerWrite = net(m1.members[leader]-m0.members[leader], idleLeader)
		}
	}
	row.EtcdIdleCores = idleEtcd
	er, pr := f.rss()
	row.EtcdRSSMiB, row.ProxyRSSMiB = float64(er)/1024, float64(pr)/1024
	row.HostsCores = (m1.self - m0.self).Seconds() / secs
	row.IdleCores = idleCores(m0.host, m1.host)
	row.Load = loadAvg()
	return row, nil
}

// writeOne makes one change — start, stop and move in turn — on a machine
// no write is in flight for. With tr nil it is not tracked. With dns, every
// DNSEvery-th write changes a machine of the meshdns processes' org and is
// also checked in DNS.
func (f *fleet) writeOne(tr *fleetTracker, dns bool) (*fleetWrite, error) {
	f.mu.Lock()
	f.seq++
	kind := []string{"start", "stop", "move"}[f.seq%3]
	dns = dns && f.c.DNSEvery > 0 && f.seq%f.c.DNSEvery == 0
	pool := f.all
	if dns {
		pool = f.dnsOrg
	}
	m, region, ok := f.pick(pool, kind, tr)
	if !ok {
		f.mu.Unlock()
		return nil, nil // every candidate busy: skip this tick
	}
	a := m.App
	v := m.value()
	switch kind {
	case "start":
		m.Started = true
	case "stop":
		m.Started = false
	case "move":
		m.Region = region
		v.Region = region
	}
	f.mu.Unlock()
	key := f.prefix + registry.MachineKey(a.Org.Name, a.Name, m.ID).Path()
	var w *fleetWrite
	if tr != nil {
		w = tr.begin(kind, key, dns)
		if dns {
			tr.checkDNS(f, w, m, kind, region)
		}
	}
	var err error
	switch kind {
	case "start":
		err = f.w.SetMachineState(f.e.ctx, a.Org.Name, a.Name, m.ID, registry.StateStarted)
	case "stop":
		err = f.w.SetMachineState(f.e.ctx, a.Org.Name, a.Name, m.ID, registry.StateStopped)
	case "move":
		err = f.w.PutMachine(f.e.ctx, *v)
	}
	if w != nil {
		w.Written = time.Now()
		if err != nil {
			tr.fail(w, err)
		}
	}
	if err != nil {
		return w, fmt.Errorf("%s %s: %w", kind, key, err)
	}
	return w, nil
}

// pick chooses a machine of pool for kind (a stopped one to start, a
// started one to stop or move) that has no write in flight; for a move also
// a region its app has no machine in, so DNS can tell the move happened.
// f.mu is held.
func (f *fleet) pick(pool []*machine, kind string, tr *fleetTracker) (*machine, string, bool) {
	for range 1000 {
		m := pool[f.rng.IntN(len(pool))]
		if m.Started == (kind == "start") {
			continue
		}
		if tr != nil && tr.busy(f.prefix+registry.MachineKey(m.App.Org.Name, m.App.Name, m.ID).Path()) {
			continue
		}
		if kind != "move" {
			return m, "", true
		}
		have := m.App.deployedRegions()
		var free []string
		for _, r := range popularRegions {
			if !slices.Contains(have, r) {
				free = append(free, r)
			}
		}
		if len(free) > 0 {
			return m, free[f.rng.IntN(len(free))], true
		}
	}
	return nil, "", false
}

// checkDNS polls every meshdns until its answer shows w, recording when.
func (t *fleetTracker) checkDNS(f *fleet, w *fleetWrite, m *machine, kind, region string) {
	a := m.App
	name := m.ID + ".vm." + a.Name + ".internal."
	ok := func(r *dns.Msg) bool { return r.Rcode == dns.RcodeSuccess && hasAddr(r, m.IP) }
	switch kind {
	case "stop":
		ok = func(r *dns.Msg) bool { return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 0 }
	case "move":
		name = region + "." + a.Name + ".internal."
	}
	deadline := time.Now().Add(f.c.Drain)
	for j, addr := range f.mdAddr {
		t.dnsWG.Add(1)
		go func() {
			defer t.dnsWG.Done()
			p, err := newUDPPoller(addr)
			if err != nil {
				return
			}
			defer p.Close()
			q := newQuery(name, dns.TypeAAAA)
			for time.Now().Before(deadline) && f.e.ctx.Err() == nil {
				r, err := p.ask(q, 200*time.Millisecond)
				if err == nil && ok(r) {
					t.seen(w.Key, t.hosts+j, time.Now())
					return
				}
				// 5 ms: fine enough against a target of 500 ms, and the
				// polls of the writes in flight do not load meshdns (and
				// the machine the hosts share) with thousands of queries
				// a second.
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
}
