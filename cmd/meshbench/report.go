//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Tables are plain text with aligned columns and a Markdown-like header,
// so they can be pasted into the README as they are printed.

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	return tw
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}

func mib(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(kib)/1024)
}

// printRuns prints one row per measured run.
func printRuns(w io.Writer, runs []result) {
	tw := newTable(w, "server", "cores", "dnsperf", "round", "QPS", "avg ms", "p50 ms*", "p99 ms*",
		"CPU s/100k", "server cores", "dnsperf cores", "irq cores", "other cores", "GCs", "peak RSS MiB", "lost", "rcodes")
	for _, r := range runs {
		gcs := "-"
		if r.GCs >= 0 {
			gcs = fmt.Sprint(r.GCs)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.0f\t%s\t%s\t%s\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%d\t%s\t\n",
			r.Target.Name, r.Target.Cores, r.Load, r.Round, r.DP.QPS, ms(r.DP.AvgLatency), ms(r.P50), ms(r.P99),
			r.CPUPer100k(), r.ServerCores(), r.DnsperfCores(), r.IRQ, r.OtherCores(), gcs,
			mib(r.PeakRSSKiB), r.DP.Lost, r.DP.Rcodes)
	}
	tw.Flush()
	fmt.Fprintln(w, "* p50/p99: latency probe (one extra client, one query at a time), see cmd/meshbench/README.md")
	fmt.Fprintln(w, "  irq cores: interrupts and softirqs, mostly loopback packet delivery, charged to no process")
	fmt.Fprintln(w, "  other cores: CPU used by the rest of the machine during the run (noise)")
}

// printProfiles prints the runs made under perf: system calls and
// context switches per answered query, and each server's hottest symbols.
func printProfiles(w io.Writer, runs []result) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nUnder perf (one extra run each; perf slows servers, so these are not in the tables above):\n\n")
	tw := newTable(w, "server", "cores", "dnsperf", "QPS", "CPU s/100k", "syscalls/q", "ctx switches/q", "migrations/q", "by call, per query")
	for _, r := range runs {
		p := r.Perf
		n := float64(r.DP.Completed + int64(r.ProbeN))
		if p == nil || n == 0 {
			continue
		}
		var calls []string
		for _, c := range syscallEvents {
			if v := p.ByCall[c]; v > 0 && float64(v)/n >= 0.005 {
				calls = append(calls, fmt.Sprintf("%s %.2f", c, float64(v)/n))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.3f\t%.2f\t%.3f\t%.3f\t%s\t\n", r.Target.Name, r.Target.Cores, r.Load, r.DP.QPS,
			r.CPUPer100k(), float64(p.Syscalls)/n, float64(p.CtxSwitch)/n, float64(p.Migrations)/n, strings.Join(calls, ", "))
	}
	tw.Flush()
	for _, r := range runs {
		if r.Perf == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d cores, %s), %% of its CPU samples (full report: %s)\n", r.Target.Name, r.Target.Cores, r.Load, r.Perf.ReportPath)
		fmt.Fprintf(w, "  by binary: %s\n  hottest:\n", strings.Join(r.Perf.ByDSO, ", "))
		for _, line := range r.Perf.Top[:min(len(r.Perf.Top), 10)] {
			fmt.Fprintf(w, "    %s\n", line)
		}
		fmt.Fprintf(w, "  hottest outside the kernel:\n")
		for _, line := range r.Perf.TopUser[:min(len(r.Perf.TopUser), 15)] {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}

// summary is the median of a target's runs with one load: one disturbed
// run out of three does not move it.
type summary struct {
	QPS, CPU float64 // QPS, CPU s/100k
	Avg, P99 time.Duration
	N        int
}

func summarize(runs []result, name string, cores int, l load) summary {
	var qps, cpu []float64
	var avg, p99 []time.Duration
	for _, r := range runs {
		if r.Target.Name != name || r.Target.Cores != cores || r.Load != l {
			continue
		}
		qps = append(qps, r.DP.QPS)
		cpu = append(cpu, r.CPUPer100k())
		avg = append(avg, r.DP.AvgLatency)
		p99 = append(p99, r.P99)
	}
	return summary{QPS: median(qps), CPU: median(cpu), Avg: median(avg), P99: median(p99), N: len(qps)}
}

// median of xs (the mean of the middle two for an even count), 0 if empty.
func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// printRatios prints meshdns against NSD and the echo baseline, per cores
// and load, with the targets.
func printRatios(w io.Writer, runs []result, coresList []int, loads []load) {
	fmt.Fprintf(w, "Medians over rounds; m = meshdns, N = NSD.\n")
	tw := newTable(w, "cores", "dnsperf", "meshdns QPS", "NSD QPS", "echo QPS", "QPS m/N (≥1.00)",
		"CPU/q m/N (≤1.00)", "avg lat m/N", "p99 m/N", "meshdns/echo", "NSD/echo", "µs/query m", "µs/query N")
	for _, c := range coresList {
		for _, l := range loads {
			m := summarize(runs, "meshdns", c, l)
			n := summarize(runs, "nsd", c, l)
			e := summarize(runs, "echo", c, l)
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t\n",
				c, l, m.QPS, n.QPS, e.QPS, ratio(m.QPS, n.QPS), ratio(m.CPU, n.CPU),
				ratio(float64(m.Avg), float64(n.Avg)), ratio(float64(m.P99), float64(n.P99)),
				ratio(m.QPS, e.QPS), ratio(n.QPS, e.QPS), m.CPU*10, n.CPU*10)
		}
	}
	tw.Flush()
}

// printPercentiles prints p50/p99/max of named duration samples.
func printPercentiles(w io.Writer, rows []struct {
	Name    string
	Samples []time.Duration
}) {
	tw := newTable(w, "what", "n", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, r := range rows {
		n := len(r.Samples)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", r.Name, n,
			ms(percentile(r.Samples, 0.5)), ms(percentile(r.Samples, 0.9)), ms(percentile(r.Samples, 0.99)), ms(percentile(r.Samples, 1)))
	}
	tw.Flush()
}
