//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// run is meshbench's main: it returns the exit code. Interrupts cancel the
// benchmark (every started process is stopped on the way out); a second
// interrupt kills them at once and exits.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; !ok {
			return
		}
		fmt.Fprintln(stderr, "meshbench: interrupted, stopping (interrupt again to kill)")
		cancel()
		select {
		case <-sig:
		case <-time.After(15 * time.Second):
		}
		killAll()
		os.Exit(130)
	}()
	defer killAll() // whatever a benchmark left behind, even after a panic

	cmd := newRootCmd(ctx, stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		if errors.Is(err, errInterrupted) || ctx.Err() != nil {
			fmt.Fprintln(stderr, "meshbench: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "meshbench: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var c common
	root := &cobra.Command{
		Use:   "meshbench",
		Short: "Benchmarks meshdns against NSD and a UDP echo baseline, with dnsperf (see cmd/meshbench/README.md)",
		Long: `meshbench generates a registry, loads it into an etcd it runs itself,
starts the meshdns binary (built from this repository unless --meshdns is
given) and measures it with dnsperf, side by side with NSD serving the same
names from a zone file and with a bare UDP echo loop.

Everything listens on 127.0.0.1 only. Every process meshbench starts is
stopped when it exits, also on error or interrupt.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	f.StringVar(&c.Meshdns, "meshdns", "", "meshdns binary to run (default: go build ./cmd/meshdns)")
	f.StringVar(&c.MeshdnsArgs, "meshdns-args", "", "extra meshdns arguments, after meshbench's own (so they override them), e.g. \"--rate-limit 100000\"")
	f.StringVar(&c.Etcd, "etcd", "embedded", "etcd to use: embedded (inside meshbench) or the path of an etcd binary to run as its own process (its CPU time is then measured apart)")
	f.StringVar(&c.WorkDir, "work-dir", "", "directory for etcd data, zone files and logs (default: a temporary directory, removed afterwards)")
	f.BoolVar(&c.Keep, "keep", false, "keep the work directory (logs, zone file, dnsperf outputs)")
	f.DurationVar(&c.Duration, "duration", 20*time.Second, "length of each measured dnsperf run")
	f.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured dnsperf run per server before measuring")
	f.StringVar(&c.Loads, "load", "4x200,1x100", "dnsperf settings as CLIENTSxOUTSTANDING (-c and -q), comma-separated")
	f.StringVar(&c.Transports, "transport", "udp", "transports to measure each --load over, comma-separated: udp, tcp (-c connections, each sending -q queries in one write and reading their answers, batch after batch), tcp1 (one query per connection: connect, ask, close; -c times -q clients, at most 40); TCP runs use meshbench's own client, not dnsperf")
	f.Uint64Var(&c.Seed, "seed", 1, "seed of the generated registry and query mix")
	f.StringVar(&c.DnsperfArgs, "dnsperf-args", "", "extra dnsperf arguments, e.g. \"-e\" for EDNS(0)")
	f.DurationVar(&c.ProbeGap, "probe-gap", time.Millisecond, "pause between the latency probe's queries")
	f.StringVar(&c.Region, "region", "ams", "meshdns --region (the asker's region on loopback)")
	f.IntVar(&c.TTL, "ttl", 5, "TTL of the NSD zone, seconds (meshdns's default --ttl is 5s)")
	f.BoolVar(&c.Perf, "perf", false, "after the measured runs, one more run per server under Linux perf: system calls and context switches per query, hottest functions")
	f.Float64Var(&c.Quiet, "quiet", 0.3, "before each run, wait until the rest of the machine uses fewer cores than this (0: don't wait)")
	f.DurationVar(&c.QuietMax, "quiet-max", 30*time.Second, "longest wait for a quiet machine before measuring anyway")
	f.Float64Var(&c.Noisy, "noisy", 0.5, "measure a run again if the rest of the machine used more cores than this meanwhile (0: never)")
	f.IntVar(&c.Retries, "retries", 3, "how often a noisy run is measured again at most")

	// Flags are parsed by the time a command calls newE; mod lets smoke
	// override some for its own short runs.
	newE := func(mod func(*common)) (*env, error) {
		cc := c
		if mod != nil {
			mod(&cc)
		}
		return newEnv(ctx, stdout, stderr, cc)
	}
	// --cpuprofile profiles meshbench itself (the fleet's hosts, the
	// writer, the pollers), not the processes it starts.
	var cpuProfile string
	var profFile *os.File
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of meshbench itself (e.g. the fleet's hosts) to this file")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		var err error
		if profFile, err = os.Create(cpuProfile); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return pprof.StartCPUProfile(profFile)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if profFile != nil {
			pprof.StopCPUProfile()
			_ = profFile.Close()
		}
	}
	// A benchmark may split the profile into phases (fleet: one file per
	// row of writes), so that what it measures is not lost among its setup.
	profilePhase = func(name string) {
		if profFile == nil {
			return
		}
		pprof.StopCPUProfile()
		_ = profFile.Close()
		var err error
		if profFile, err = os.Create(cpuProfile + "." + name); err != nil {
			fmt.Fprintf(stderr, "--cpuprofile: %v\n", err)
			profFile = nil
			return
		}
		if err := pprof.StartCPUProfile(profFile); err != nil {
			fmt.Fprintf(stderr, "--cpuprofile: %v\n", err)
		}
	}
	root.AddCommand(newQPSCmd(newE), newPropagationCmd(newE), newScaleCmd(newE), newFleetCmd(newE), newSmokeCmd(newE))
	return root
}

// profilePhase ends the part of --cpuprofile's profile written so far and
// goes on in FILE.name; it does nothing without --cpuprofile.
var profilePhase = func(name string) {}

// envMaker makes the env of one benchmark from the parsed flags, changed by mod.
type envMaker func(mod func(*common)) (*env, error)

// run makes the env from the parsed flags as they are, runs f with it and
// closes it.
func (newE envMaker) run(f func(e *env) error) error {
	e, err := newE(nil)
	if err != nil {
		return err
	}
	defer e.close()
	return f(e)
}

// genFlags adds the registry-shape flags with the given defaults.
func genFlags(f *pflag.FlagSet, g *genConfig, loader *string) {
	f.IntVar(&g.Orgs, "orgs", g.Orgs, "number of orgs (each its own fdaa:0:<n>::/48)")
	f.IntVar(&g.Apps, "apps", g.Apps, "number of apps, in total")
	f.IntVar(&g.Machines, "machines", g.Machines, "number of machines, in total")
	f.Float64Var(&g.ZipfS, "zipf", g.ZipfS, "Zipf exponent of machines per app and of app popularity in queries (0: machines spread evenly)")
	f.Float64Var(&g.Stopped, "stopped", g.Stopped, "fraction of machines in state stopped")
	f.StringVar(loader, "loader", *loader, "how to write the registry to etcd: putall (registry.Writer.PutAll) or txn (parallel raw transactions)")
}

// readyTimeoutFlag adds --ready-timeout, with d's value as its default.
func readyTimeoutFlag(f *pflag.FlagSet, d *time.Duration) {
	f.DurationVar(d, "ready-timeout", *d, "how long to wait for meshdns's first complete answers")
}

func newQPSCmd(newE envMaker) *cobra.Command {
	c := qpsConfig{Gen: genConfig{Orgs: 1, Apps: 2000, Machines: 10000, ZipfS: 1.1, Stopped: 0.1},
		Loader: loaderPutAll, Queries: 100000, Rounds: 1, Check: 500, NSD: true, ReadyTimeout: 2 * time.Minute}
	var cores string
	cmd := &cobra.Command{
		Use:   "qps",
		Short: "QPS, latency, CPU per query and memory of meshdns vs NSD vs a UDP echo loop, on the standard mix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.Cores, err = parseInts(cores); err != nil {
				return fmt.Errorf("--cores: %w", err)
			}
			return newE.run(func(e *env) error {
				c.Gen.Seed = e.c.Seed
				_, err := runQPS(e, c)
				return err
			})
		},
	}
	f := cmd.Flags()
	genFlags(f, &c.Gen, &c.Loader)
	f.IntVar(&c.Queries, "queries", c.Queries, "lines in the dnsperf query file")
	f.StringVar(&cores, "cores", "1,2", "core budgets to compare: meshdns GOMAXPROCS = NSD server-count = echo readers, comma-separated")
	f.IntVar(&c.Rounds, "rounds", c.Rounds, "measured runs per server and setting (the order alternates each round)")
	f.IntVar(&c.Check, "check", c.Check, "distinct queries whose answers are checked on every server before measuring")
	f.BoolVar(&c.NSD, "nsd", c.NSD, "measure NSD too (needs the nsd binary)")
	f.BoolVar(&c.Strict, "strict", c.Strict, "exit 1 if a checked answer differs from SPEC")
	readyTimeoutFlag(f, &c.ReadyTimeout)
	return cmd
}

func newPropagationCmd(newE envMaker) *cobra.Command {
	c := propConfig{Gen: genConfig{Orgs: 1, Apps: 10000, Machines: 100000, ZipfS: 1.1, Stopped: 0.1},
		Loader: loaderPutAll, Changes: 1000, Timeout: 5 * time.Second, ReadyTimeout: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "propagation",
		Short: "Time from an etcd write's return to the first DNS answer that shows it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return newE.run(func(e *env) error {
				c.Gen.Seed = e.c.Seed
				return runPropagation(e, c)
			})
		},
	}
	f := cmd.Flags()
	genFlags(f, &c.Gen, &c.Loader)
	f.IntVar(&c.Changes, "changes", c.Changes, "number of changes (start, stop, move in turn)")
	f.DurationVar(&c.Timeout, "timeout", c.Timeout, "a change not seen in DNS within this counts as lost")
	readyTimeoutFlag(f, &c.ReadyTimeout)
	return cmd
}

func newScaleCmd(newE envMaker) *cobra.Command {
	c := scaleConfig{Gen: genConfig{Orgs: 10000, Apps: 100000, Machines: 1000000, Stopped: 0.1},
		Base:   genConfig{Orgs: 1, Apps: 2000, Machines: 10000, ZipfS: 1.1, Stopped: 0.1},
		Loader: loaderPutAll, Queries: 100000, Rounds: 1, ReadyTimeout: 10 * time.Minute, Restart: true, Settle: 5 * time.Second, ReadyzWait: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Start-up time, memory and QPS of meshdns with a big registry, against the qps benchmark's registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return newE.run(func(e *env) error {
				c.Gen.Seed, c.Base.Seed = e.c.Seed, e.c.Seed
				return runScale(e, c)
			})
		},
	}
	f := cmd.Flags()
	genFlags(f, &c.Gen, &c.Loader)
	f.IntVar(&c.Base.Machines, "baseline-machines", c.Base.Machines, "machines of the comparison registry (1 org, Zipf apps); 0 skips the comparison")
	f.IntVar(&c.Base.Apps, "baseline-apps", c.Base.Apps, "apps of the comparison registry")
	f.IntVar(&c.Queries, "queries", c.Queries, "lines in each dnsperf query file")
	f.IntVar(&c.Rounds, "rounds", c.Rounds, "measured runs per server and setting")
	readyTimeoutFlag(f, &c.ReadyTimeout)
	f.BoolVar(&c.Restart, "restart", c.Restart, "also time a restart of meshdns on the same --data-dir")
	f.DurationVar(&c.ReadyzWait, "readyz-wait", c.ReadyzWait, "how long after the first complete answer to wait for /readyz (if meshdns has --http)")
	return cmd
}

func newFleetCmd(newE envMaker) *cobra.Command {
	c := fleetConfig{Gen: genConfig{Orgs: 100, Apps: 1000, Machines: 10000, ZipfS: 1.1, Stopped: 0.1},
		Meshdns: 3, DNSEvery: 4, Late: 5 * time.Second, Drain: 10 * time.Second, Herd: true, ReadyTimeout: 15 * time.Minute, HerdTimeout: 2 * time.Minute}
	var hosts, proxies, writes, loader string
	var replot []string
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Thousands of hosts watching one 3-member etcd cluster, directly or through etcd's gRPC proxy: propagation to every host, etcd's cost per write, restart herds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.Hosts, err = parseInts(hosts); err != nil {
				return fmt.Errorf("--hosts: %w", err)
			}
			if c.Proxies, err = parseCounts(proxies); err != nil {
				return fmt.Errorf("--proxies: %w", err)
			}
			if c.Writes, err = parseInts(writes); err != nil {
				return fmt.Errorf("--writes: %w", err)
			}
			if c.Meshdns < 1 {
				return fmt.Errorf("--meshdns-procs %d: want at least 1", c.Meshdns)
			}
			if len(replot) > 0 {
				if c.Plot == "" {
					return fmt.Errorf("--replot needs --plot FILE.svg")
				}
				return replotFleet(replot, c.Plot)
			}
			return newE.run(func(e *env) error {
				c.Gen.Seed = e.c.Seed
				return runFleet(e, c)
			})
		},
	}
	f := cmd.Flags()
	genFlags(f, &c.Gen, &loader)
	_ = f.MarkHidden("loader") // the fleet always loads with txn
	f.StringVar(&hosts, "hosts", "10,100,1000", "fleet sizes: hosts, each its own etcd client, store and syncer, comma-separated")
	f.StringVar(&proxies, "proxies", "0,2", "numbers of etcd gRPC proxies between hosts and members (0: hosts watch members directly), comma-separated")
	f.StringVar(&writes, "writes", "20", "write rates (starts, stops and moves per second), comma-separated")
	f.IntVar(&c.Meshdns, "meshdns-procs", c.Meshdns, "meshdns processes answering DNS, checked end to end")
	f.IntVar(&c.DNSEvery, "dns-every", c.DNSEvery, "every n-th write changes the meshdns org and is checked in DNS")
	f.DurationVar(&c.Late, "late", c.Late, "a delivery later than this counts as late")
	f.DurationVar(&c.Drain, "drain", c.Drain, "after the last write of a row, wait this long at most; deliveries not seen by then are lost")
	f.BoolVar(&c.Herd, "herd", c.Herd, "time restart herds: the hosts' cold start, and a restart of all from local copies")
	f.DurationVar(&c.HerdTimeout, "herd-timeout", c.HerdTimeout, "a restart herd not all current by then is reported with the number of hosts that are")
	f.BoolVar(&c.WatchOnly, "watch-only", false, "hosts watch but do not decode or apply events (no registry.Store): etcd's and the proxies' side of a fleet whose hosts' CPU would not fit on this machine")
	f.BoolVar(&c.ReadyHeap, "ready-heap", true, "before each row, touch heap room for the row's garbage, as a host's heap in steady state has (see fleetheap.go); false: the row's garbage faults in fresh pages of the shared heap")
	f.BoolVar(&c.JSON, "json", false, "print one JSON object per result row instead of the tables")
	f.StringVar(&c.Plot, "plot", "", "write an SVG of fleet p99 against hosts to this path")
	f.StringSliceVar(&replot, "replot", nil, "run nothing: draw --plot from the rows of earlier --json outputs (files, comma-separated)")
	readyTimeoutFlag(f, &c.ReadyTimeout)
	return cmd
}

// parseCounts parses comma-separated integers ≥ 0.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: want integers ≥ 0 separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
