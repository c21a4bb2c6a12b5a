//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// common are the settings every benchmark shares.
type common struct {
	Meshdns     string        // prebuilt binary; empty builds ./cmd/meshdns
	MeshdnsArgs string        // extra meshdns arguments
	Etcd        string        // "embedded" or an etcd binary to run as a process
	WorkDir     string        // where data and logs go; empty: a temp dir
	Keep        bool          // keep WorkDir afterwards
	Duration    time.Duration // each measured dnsperf run
	Warmup      time.Duration // unmeasured dnsperf run per server first
	Loads       string        // dnsperf settings, "4x200,1x100"
	Transports  string        // "udp,tcp,tcp1": each load over each
	Seed        uint64
	DnsperfArgs string // extra dnsperf arguments
	ProbeGap    time.Duration
	Region      string // meshdns --region
	TTL         int
	Perf        bool          // extra runs under Linux perf
	Quiet       float64       // wait for others to use fewer cores than this
	QuietMax    time.Duration // ... but no longer than this
	Noisy       float64       // measure again if others used more cores than this
	Retries     int           // ... at most this often
}

// env is one meshbench invocation: its work directory, output, and the
// things started once and shared (meshdns binary, etcd).
type env struct {
	ctx   context.Context
	out   io.Writer // results
	log   io.Writer // progress
	c     common
	dir   string
	loads []load
	bin   string
	etcd  *benchEtcd
	t0    time.Time
	// profiled are the runs made under perf, reported apart.
	profiled []result
}

func newEnv(ctx context.Context, out, log io.Writer, c common) (*env, error) {
	loads, err := parseLoads(c.Loads)
	if err != nil {
		return nil, err
	}
	if c.Transports == "" {
		c.Transports = "udp"
	}
	if loads, err = withTransports(loads, c.Transports); err != nil {
		return nil, err
	}
	e := &env{ctx: ctx, out: out, log: log, c: c, loads: loads, t0: time.Now()}
	if c.WorkDir != "" {
		e.dir = c.WorkDir
		err = os.MkdirAll(e.dir, 0o755)
	} else {
		e.dir, err = os.MkdirTemp("", "meshbench-")
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// close stops everything that was started and removes the work directory
// unless asked to keep it.
func (e *env) close() {
	stopAll()
	if e.etcd != nil {
		e.etcd.Close()
	}
	if e.c.Keep || e.c.WorkDir != "" || e.c.Perf { // perf's data is what --perf is for
		e.progress("logs and data kept in %s", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// progress prints what is happening, with the time since start.
func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.log, "[%6.1fs] %s\n", time.Since(e.t0).Seconds(), fmt.Sprintf(format, args...))
}

// path is a file or directory inside the work directory.
func (e *env) path(name ...string) string { return filepath.Join(append([]string{e.dir}, name...)...) }

// meshdnsBin returns the meshdns binary, building it the first time.
func (e *env) meshdnsBin() (string, error) {
	if e.bin != "" {
		return e.bin, nil
	}
	if e.c.Meshdns != "" {
		e.bin = e.c.Meshdns
		return e.bin, nil
	}
	start := time.Now()
	bin, err := buildMeshdns(e.dir)
	if err != nil {
		return "", err
	}
	e.progress("built meshdns (%s) in %v", treeState(), time.Since(start).Round(time.Millisecond))
	e.bin = bin
	return bin, nil
}

// etcdServer returns the embedded etcd, starting it the first time.
func (e *env) etcdServer() (*benchEtcd, error) {
	if e.etcd != nil {
		return e.etcd, nil
	}
	var b *benchEtcd
	var err error
	if e.c.Etcd == "" || e.c.Etcd == "embedded" {
		b, err = startEtcd(e.dir)
	} else {
		b, err = startEtcdProcess(e.dir, e.c.Etcd)
	}
	if err != nil {
		return nil, err
	}
	if b.p != nil {
		e.progress("etcd process %d at %s", b.p.Pid(), b.Endpoint)
	} else {
		e.progress("embedded etcd at %s", b.Endpoint)
	}
	e.etcd = b
	return b, nil
}

func (e *env) dnsperfExtra() []string { return strings.Fields(e.c.DnsperfArgs) }

// meshdnsExtra are the extra meshdns arguments; they come last, so they
// override meshbench's own.
func (e *env) meshdnsExtra() []string { return strings.Fields(e.c.MeshdnsArgs) }

// benchRun returns the settings of measured runs.
func (e *env) benchRun() benchRun {
	return benchRun{Dir: e.dir, ProbeGap: e.c.ProbeGap, Duration: e.c.Duration, Extra: e.dnsperfExtra()}
}

// warm sends unmeasured load to t, so that every run of every server
// starts with whatever caches it keeps already filled.
func (e *env) warm(b benchRun, t target) error {
	if e.c.Warmup <= 0 {
		return nil
	}
	// Once per transport: TCP answers are cached apart (one query per
	// connection shares TCP's cache).
	seen := map[string]bool{}
	for _, l := range e.loads {
		if l.T == transportTCP1 || seen[l.T] || !t.speaks(l) {
			continue
		}
		seen[l.T] = true
		var err error
		if l.T == "tcp" {
			_, err = runTCPPipelined(e.ctx, t.Addr, t.Probe, l, e.c.Warmup)
		} else {
			_, err = runDnsperf(e.ctx, e.path(fmt.Sprintf("dnsperf-warmup-%s-%d.txt", t.Name, t.Cores)), t.Addr, t.Queries, l, e.c.Warmup, b.Extra)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
