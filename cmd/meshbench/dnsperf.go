//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// load is one dnsperf setting: -c clients, -q outstanding queries, and
// the transport T: "udp" (or ""), "tcp" (-c connections, -q queries
// pipelined on each, in batches) or "tcp1" (one query per connection).
// Both TCP modes are meshbench's own clients (tcp1.go): dnsperf cannot
// ask one query per connection, and its TCP mode fails on big answers.
type load struct {
	C, Q int
	T    string
}

func (l load) String() string {
	switch l.T {
	case "tcp":
		return fmt.Sprintf("tcp -c %d -q %d", l.C, l.Q)
	case transportTCP1:
		return fmt.Sprintf("tcp1 -c %d -q %d", l.C, l.Q)
	}
	return fmt.Sprintf("-c %d -q %d", l.C, l.Q)
}

// withTransports is every load of loads over each transport of ts
// ("udp,tcp,tcp1"), transport by transport.
func withTransports(loads []load, ts string) ([]load, error) {
	var out []load
	for _, t := range strings.Split(ts, ",") {
		t = strings.TrimSpace(t)
		if t != "udp" && t != "tcp" && t != transportTCP1 {
			return nil, fmt.Errorf("--transport %q: want udp, tcp or tcp1, comma-separated", ts)
		}
		for _, l := range loads {
			if t != "udp" {
				l.T = t
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// parseLoads parses "4x200,1x100".
func parseLoads(s string) ([]load, error) {
	var out []load
	for _, part := range strings.Split(s, ",") {
		c, q, ok := strings.Cut(strings.TrimSpace(part), "x")
		ci, err1 := strconv.Atoi(c)
		qi, err2 := strconv.Atoi(q)
		if !ok || err1 != nil || err2 != nil || ci < 1 || qi < 1 {
			return nil, fmt.Errorf("--load %q: want CxQ[,CxQ...], e.g. 4x200,1x100", s)
		}
		out = append(out, load{C: ci, Q: qi})
	}
	return out, nil
}

// perfResult is what dnsperf printed.
type perfResult struct {
	Sent, Completed, Lost int64
	QPS                   float64
	AvgLatency, MaxLat    time.Duration
	Rcodes                string // e.g. "NOERROR 97%, NXDOMAIN 3%"
	RunTime               time.Duration
	CPU                   time.Duration // dnsperf's own CPU time
}

// runDnsperf runs dnsperf against addr for dur and parses its statistics.
func runDnsperf(ctx context.Context, logPath, addr, queryFile string, l load, dur time.Duration, extra []string) (perfResult, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"dnsperf", "-s", host, "-p", port, "-d", queryFile,
		"-l", strconv.Itoa(max(1, int(dur.Round(time.Second)/time.Second))),
		"-c", strconv.Itoa(l.C), "-q", strconv.Itoa(l.Q)}
	args = append(args, extra...)
	p, err := startProc("dnsperf", logPath, nil, args...)
	if err != nil {
		return perfResult{}, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Stop(time.Second)
		return perfResult{}, errInterrupted
	}
	p.Stop(0) // reaped already: just forget it
	out, _ := os.ReadFile(logPath)
	if p.err != nil {
		return perfResult{}, fmt.Errorf("dnsperf %s: %v\n%s", strings.Join(args[1:], " "), p.err, out)
	}
	r, err := parseDnsperf(string(out))
	if err != nil {
		return r, fmt.Errorf("%w; output:\n%s", err, out)
	}
	if ps := p.Cmd.ProcessState; ps != nil {
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	return r, nil
}

var (
	reSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reQPS       = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	reRunTime   = regexp.MustCompile(`Run time \(s\):\s+([\d.]+)`)
	reLatency   = regexp.MustCompile(`Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)`)
	reRcodes    = regexp.MustCompile(`Response codes:\s+(.*)`)
	reRcodePart = regexp.MustCompile(`([A-Z]+) \d+ \(([\d.]+)%\)`)
)

// parseDnsperf reads dnsperf 2.x's "Statistics:" block.
func parseDnsperf(out string) (perfResult, error) {
	var r perfResult
	num := func(re *regexp.Regexp, i int) (float64, bool) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[i], 64)
		return v, err == nil
	}
	sent, ok1 := num(reSent, 1)
	done, ok2 := num(reCompleted, 1)
	qps, ok3 := num(reQPS, 1)
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("dnsperf printed no statistics")
	}
	lost, _ := num(reLost, 1)
	rt, _ := num(reRunTime, 1)
	avg, _ := num(reLatency, 1)
	mx, _ := num(reLatency, 3)
	r.Sent, r.Completed, r.Lost, r.QPS = int64(sent), int64(done), int64(lost), qps
	r.RunTime = time.Duration(rt * float64(time.Second))
	r.AvgLatency = time.Duration(avg * float64(time.Second))
	r.MaxLat = time.Duration(mx * float64(time.Second))
	if m := reRcodes.FindStringSubmatch(out); m != nil {
		var parts []string
		for _, p := range reRcodePart.FindAllStringSubmatch(m[1], -1) {
			parts = append(parts, p[1]+" "+p[2]+"%")
		}
		r.Rcodes = strings.Join(parts, ", ")
	}
	return r, nil
}
