//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// notSeen marks a receiver that never saw a write.
const notSeen = time.Duration(math.MaxInt64)

// writeSample is one write: how long after the write call returned each
// receiver saw it (hosts first, then, for writes checked in DNS, the
// meshdns processes); notSeen if it never did. A receiver may see a write
// before the call returns: its sample is then negative.
type writeSample struct {
	DNS    bool
	Arrive []time.Duration
}

// fleetStats summarises the samples of one row.
type fleetStats struct {
	Writes int
	// Fleet latency of a write: until the last host saw it. Writes some
	// host never saw are left out (and counted in Lost).
	P50, P99, Max time.Duration
	// Per-host p99 over the writes: the median host's and the worst.
	HostP99Median, HostP99Worst time.Duration
	// DNS: every (write, meshdns) pair of the writes checked in DNS.
	DNSWrites              int
	DNSP50, DNSP99, DNSMax time.Duration
	// Deliveries counts (write, receiver) pairs; Lost those never seen,
	// Late those seen after the late bound.
	Deliveries, Lost, Late int
}

// computeFleetStats summarises samples of a fleet of hosts receivers
// (the first hosts entries of each sample).
func computeFleetStats(samples []writeSample, hosts int, late time.Duration) fleetStats {
	s := fleetStats{Writes: len(samples)}
	var fleet, dns []time.Duration
	perHost := make([][]time.Duration, hosts)
	for _, w := range samples {
		worst, complete := time.Duration(math.MinInt64), true
		for i, d := range w.Arrive {
			s.Deliveries++
			if d == notSeen {
				s.Lost++
				if i < hosts {
					complete = false
				}
				continue
			}
			if d > late {
				s.Late++
			}
			if i < hosts {
				worst = max(worst, d)
				perHost[i] = append(perHost[i], d)
			} else {
				dns = append(dns, d)
			}
		}
		if w.DNS {
			s.DNSWrites++
		}
		if complete && hosts > 0 {
			fleet = append(fleet, worst)
		}
	}
	s.P50, s.P99, s.Max = percentile(fleet, 0.5), percentile(fleet, 0.99), percentile(fleet, 1)
	var hostP99 []time.Duration
	for _, ds := range perHost {
		if len(ds) > 0 {
			hostP99 = append(hostP99, percentile(ds, 0.99))
		}
	}
	s.HostP99Median, s.HostP99Worst = percentile(hostP99, 0.5), percentile(hostP99, 1)
	s.DNSP50, s.DNSP99, s.DNSMax = percentile(dns, 0.5), percentile(dns, 0.99), percentile(dns, 1)
	return s
}

// fleetRow is one measured setting of `meshbench fleet`, as --json prints it.
type fleetRow struct {
	Kind       string `json:"kind"` // "writes"
	Hosts      int    `json:"hosts"`
	Proxies    int    `json:"proxies"`
	WritesPerS int    `json:"writes_per_s"`
	// WatchOnly: hosts that watch without applying (--watch-only).
	WatchOnly bool    `json:"watch_only"`
	Writes    int     `json:"writes"`
	Seconds   float64 `json:"seconds"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// Per-host p99: the median host's and the worst host's.
	HostP99MedianMs float64 `json:"host_p99_median_ms"`
	HostP99WorstMs  float64 `json:"host_p99_worst_ms"`
	DNSWrites       int     `json:"dns_writes"`
	DNSP50ms        float64 `json:"dns_p50_ms"`
	DNSP99ms        float64 `json:"dns_p99_ms"`
	DNSMaxMs        float64 `json:"dns_max_ms"`
	Deliveries      int     `json:"deliveries"`
	Lost            int     `json:"lost"`
	Late            int     `json:"late"`
	EventsPerS      float64 `json:"events_per_s"`
	// The hosts' syncers' watch restarts and full loads during the row.
	WatchRestarts uint64 `json:"watch_restarts"`
	Loads         uint64 `json:"loads"`
	// CPU of all etcd members per write, of the leader alone, of all proxies.
	EtcdCPUmsPerWrite       float64 `json:"etcd_cpu_ms_per_write"`
	EtcdLeaderCPUmsPerWrite float64 `json:"etcd_leader_cpu_ms_per_write"`
	ProxyCPUmsPerWrite      float64 `json:"proxy_cpu_ms_per_write"`
	// The same less what etcd used with nothing written (EtcdIdleCores,
	// measured just before): the cost of the writes and their delivery.
	EtcdNetCPUmsPerWrite       float64 `json:"etcd_net_cpu_ms_per_write"`
	EtcdLeaderNetCPUmsPerWrite float64 `json:"etcd_leader_net_cpu_ms_per_write"`
	EtcdIdleCores              float64 `json:"etcd_idle_cores"`
	EtcdRSSMiB                 float64 `json:"etcd_rss_mib"`  // all members
	ProxyRSSMiB                float64 `json:"proxy_rss_mib"` // all proxies
	// Cores used by meshbench (the hosts, the writer, the DNS pollers) and
	// left idle on the machine, on average over the run.
	HostsCores float64 `json:"hosts_cores"`
	IdleCores  float64 `json:"idle_cores"`
	Load       string  `json:"loadavg"`
	// HeapReadiedMiB is the heap room touched before the row (--ready-heap);
	// AllocBytesPerEvent is what meshbench allocated during the row per
	// event the hosts applied.
	HeapReadiedMiB     float64 `json:"heap_readied_mib"`
	AllocBytesPerEvent float64 `json:"bench_alloc_bytes_per_event"`
	// Collections completed and minor page faults taken by meshbench
	// during the row.
	GCCycles   uint64 `json:"bench_gc_cycles"`
	PageFaults int64  `json:"bench_page_faults"`
}

// herdRow is one restart herd.
type herdRow struct {
	Kind      string `json:"kind"` // "herd"
	Hosts     int    `json:"hosts"`
	Proxies   int    `json:"proxies"`
	Copies    bool   `json:"local_copies"`
	WatchOnly bool   `json:"watch_only"`
	// AllCurrentS is the time from the restart to the moment the last host
	// reached etcd's revision at the restart; -1 if some host had not
	// within --herd-timeout (CurrentHosts had).
	AllCurrentS  float64 `json:"all_current_s"`
	CurrentHosts int     `json:"current_hosts"`
	// CopiesReadS is how long reading every host's local copy took before
	// the clock started (on a real fleet each host reads its own in parallel).
	CopiesReadS    float64 `json:"copies_read_s"`
	Replayed       int64   `json:"revisions_behind"`
	BytesRead      int64   `json:"bytes_read"`
	BytesPerHost   int64   `json:"bytes_per_host"`
	EtcdPeakCores  float64 `json:"etcd_peak_cores"`
	EtcdCPUs       float64 `json:"etcd_cpu_s"`
	EtcdPeakRSSMiB float64 `json:"etcd_peak_rss_mib"`
	ProxyCPUs      float64 `json:"proxy_cpu_s"`
	HostsCPUs      float64 `json:"hosts_cpu_s"`
	IdleCores      float64 `json:"idle_cores"`
	Load           string  `json:"loadavg"`
}

func msf(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func newFleetRow(st fleetStats) fleetRow {
	return fleetRow{Kind: "writes", Writes: st.Writes,
		P50ms: msf(st.P50), P99ms: msf(st.P99), MaxMs: msf(st.Max),
		HostP99MedianMs: msf(st.HostP99Median), HostP99WorstMs: msf(st.HostP99Worst),
		DNSWrites: st.DNSWrites, DNSP50ms: msf(st.DNSP50), DNSP99ms: msf(st.DNSP99), DNSMaxMs: msf(st.DNSMax),
		Deliveries: st.Deliveries, Lost: st.Lost, Late: st.Late}
}

func printJSONRow(w io.Writer, row any) error {
	data, err := json.Marshal(row)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

func printFleetRows(w io.Writer, rows []fleetRow) {
	tw := newTable(w, "hosts", "proxies", "W/s", "writes", "p50 ms", "p99 ms", "max ms", "host p99 med/worst", "DNS p50/p99/max (n)",
		"lost", "late", "events/s", "watch restarts/loads", "etcd CPU ms/w (leader)", "net of idle (leader)", "etcd idle cores", "proxy ms/w", "etcd RSS MiB", "proxy RSS MiB", "bench cores", "idle cores", "load")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f/%.1f\t%.1f/%.1f/%.1f (%d)\t%d\t%d\t%.0f\t%d/%d\t%.2f (%.2f)\t%.2f (%.2f)\t%.3f\t%.2f\t%.0f\t%.0f\t%.2f\t%.2f\t%s\t\n",
			r.Hosts, r.Proxies, r.WritesPerS, r.Writes, r.P50ms, r.P99ms, r.MaxMs, r.HostP99MedianMs, r.HostP99WorstMs,
			r.DNSP50ms, r.DNSP99ms, r.DNSMaxMs, r.DNSWrites, r.Lost, r.Late, r.EventsPerS, r.WatchRestarts, r.Loads,
			r.EtcdCPUmsPerWrite, r.EtcdLeaderCPUmsPerWrite, r.EtcdNetCPUmsPerWrite, r.EtcdLeaderNetCPUmsPerWrite, r.EtcdIdleCores, r.ProxyCPUmsPerWrite, r.EtcdRSSMiB, r.ProxyRSSMiB,
			r.HostsCores, r.IdleCores, r.Load)
	}
	tw.Flush()
}

func printHerdRows(w io.Writer, rows []herdRow) {
	tw := newTable(w, "hosts", "proxies", "local copies", "all current s (current hosts)", "copies read s", "revs behind", "bytes read", "bytes/host",
		"etcd peak cores", "etcd CPU s", "etcd peak RSS MiB", "proxy CPU s", "bench CPU s", "idle cores", "load")
	for _, r := range rows {
		cur := fmt.Sprintf("%.2f", r.AllCurrentS)
		if r.AllCurrentS < 0 {
			cur = fmt.Sprintf("not all (%d)", r.CurrentHosts)
		}
		fmt.Fprintf(tw, "%d\t%d\t%t\t%s\t%.2f\t%d\t%d\t%d\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t\n",
			r.Hosts, r.Proxies, r.Copies, cur, r.CopiesReadS, r.Replayed, r.BytesRead, r.BytesPerHost,
			r.EtcdPeakCores, r.EtcdCPUs, r.EtcdPeakRSSMiB, r.ProxyCPUs, r.HostsCPUs, r.IdleCores, r.Load)
	}
	tw.Flush()
}

// writePlot draws fleet p99 against the number of hosts, one line per
// (proxies, writes/s), on a log-scaled hosts axis, as SVG.
func writePlot(path string, rows []fleetRow) error {
	type key struct {
		P, W  int
		Watch bool
	}
	series := map[key][]fleetRow{}
	var keys []key
	minY, maxY := math.Inf(1), 0.0
	minX, maxX := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		k := key{r.Proxies, r.WritesPerS, r.WatchOnly}
		if _, ok := series[k]; !ok {
			keys = append(keys, k)
		}
		series[k] = append(series[k], r)
		maxY = max(maxY, r.P99ms)
		minY = min(minY, max(r.P99ms, 0.1))
		minX, maxX = min(minX, float64(r.Hosts)), max(maxX, float64(r.Hosts))
	}
	if len(rows) == 0 {
		return fmt.Errorf("no rows to plot")
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.Watch != b.Watch {
			if a.Watch {
				return 1
			}
			return -1
		}
		if a.P != b.P {
			return a.P - b.P
		}
		return a.W - b.W
	})
	const W, H, left, right, top, bottom = 780, 400, 70, 290, 30, 50
	lx0, lx1 := math.Log10(minX), math.Log10(maxX)
	if lx1-lx0 < 1e-9 {
		lx0, lx1 = lx0-0.5, lx1+0.5
	}
	// Both axes are logarithmic: p99 spans milliseconds to seconds.
	ly0, ly1 := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(max(maxY, 0.1)))
	if ly1 <= ly0 {
		ly1 = ly0 + 1
	}
	px := func(n int) float64 {
		return left + (math.Log10(float64(n))-lx0)/(lx1-lx0)*float64(W-left-right)
	}
	py := func(v float64) float64 {
		return float64(H-bottom) - (math.Log10(max(v, 0.1))-ly0)/(ly1-ly0)*float64(H-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">fleet p99 propagation (write return → every host) against hosts</text>`+"\n", left)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, H-bottom, W-right, H-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, H-bottom)
	for d := ly0; d <= ly1; d++ {
		v := math.Pow(10, d)
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
			left, y, W-right, y, left-5, y+4, v)
	}
	for d := math.Floor(lx0); d <= math.Ceil(lx1); d++ {
		n := int(math.Pow(10, d))
		if float64(n) < minX*0.999 || float64(n) > maxX*1.001 {
			continue
		}
		x := px(n)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/><text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n",
			x, H-bottom, x, H-bottom+5, x, H-bottom+18, n)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">hosts (log scale)</text>`+"\n", (left+W-right)/2, H-12)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">p99 ms (log scale)</text>`+"\n", (top+H-bottom)/2, (top+H-bottom)/2)
	// Issue 15's target for 1,000 hosts through proxies at 20 writes/s.
	if t := py(500); 500 >= math.Pow(10, ly0) && 500 <= math.Pow(10, ly1) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="2 3"/><text x="%d" y="%.1f" fill="#555" text-anchor="end">target 500 ms</text>`+"\n",
			left, t, W-right, t, W-right-4, t-4)
	}
	colors := []string{"#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
	for i, k := range keys {
		rs := series[k]
		slices.SortFunc(rs, func(a, b fleetRow) int { return a.Hosts - b.Hosts })
		c := colors[i%len(colors)]
		dash := ""
		if k.P == 0 {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, r := range rs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(r.Hosts), py(r.P99ms)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, dash, strings.Join(pts, " "))
		for _, r := range rs {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(r.Hosts), py(r.P99ms), c)
		}
		y := top + 10 + 18*i
		label := fmt.Sprintf("%d proxies, %d writes/s", k.P, k.W)
		if k.Watch {
			label += ", watch-only"
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
			W-right+10, y, W-right+30, y, c, dash, W-right+35, y+4, label)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// replotFleet draws the plot from the "writes" rows of --json outputs.
func replotFleet(files []string, out string) error {
	var rows []fleetRow
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var r fleetRow
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return fmt.Errorf("%s:%d: %w", name, i+1, err)
			}
			if r.Kind == "writes" {
				rows = append(rows, r)
			}
		}
	}
	return writePlot(out, rows)
}
