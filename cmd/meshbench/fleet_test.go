//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestComputeFleetStats(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	samples := []writeSample{
		// Seen by both hosts; fleet latency is the slower host's.
		{Arrive: []time.Duration{ms(1), ms(3)}},
		{Arrive: []time.Duration{ms(2), ms(10)}},
		// Host 1 saw it before the write call returned.
		{Arrive: []time.Duration{ms(4), -ms(1)}},
		// Host 0 never saw it: lost, and left out of the fleet latencies.
		{Arrive: []time.Duration{notSeen, ms(2)}},
		// Late on host 0; checked in DNS, seen by one meshdns of two.
		{DNS: true, Arrive: []time.Duration{ms(6000), ms(5), ms(7), notSeen}},
	}
	st := computeFleetStats(samples, 2, 5*time.Second)
	if st.Writes != 5 || st.Deliveries != 12 || st.Lost != 2 || st.Late != 1 || st.DNSWrites != 1 {
		t.Errorf("counts: %+v", st)
	}
	// Fleet latencies: 3, 10, 4, 6000 ms.
	if st.P50 != ms(4) || st.Max != ms(6000) || st.P99 != ms(6000) {
		t.Errorf("fleet p50 %v p99 %v max %v, want 4ms 6s 6s", st.P50, st.P99, st.Max)
	}
	// Host 0: 1, 2, 4, 6000 → p99 6000; host 1: -1, 2, 3, 5, 10 → p99 10.
	if st.HostP99Worst != ms(6000) || st.HostP99Median != ms(10) {
		t.Errorf("per-host p99 median %v worst %v, want 10ms 6s", st.HostP99Median, st.HostP99Worst)
	}
	if st.DNSP50 != ms(7) || st.DNSMax != ms(7) {
		t.Errorf("DNS p50 %v max %v, want 7ms", st.DNSP50, st.DNSMax)
	}
}

func TestComputeFleetStatsEmpty(t *testing.T) {
	st := computeFleetStats(nil, 3, time.Second)
	if st != (fleetStats{}) {
		t.Errorf("no samples: %+v", st)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(ds, c.q); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestFleetRowJSON pins the fields `meshbench fleet --json` promises.
func TestFleetRowJSON(t *testing.T) {
	row := newFleetRow(fleetStats{Writes: 3, P50: 1500 * time.Microsecond, P99: 2 * time.Millisecond, Max: 3 * time.Millisecond, Lost: 1})
	row.Hosts, row.Proxies, row.WritesPerS, row.EtcdCPUmsPerWrite = 1000, 2, 20, 0.75
	data, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"hosts": 1000, "proxies": 2, "writes_per_s": 20, "p50_ms": 1.5, "p99_ms": 2, "max_ms": 3,
		"lost": 1, "etcd_cpu_ms_per_write": 0.75}
	for k, v := range want {
		if got, ok := m[k].(float64); !ok || got != v {
			t.Errorf("%s = %v, want %v (row %s)", k, m[k], v, data)
		}
	}
	if m["kind"] != "writes" {
		t.Errorf("kind = %v", m["kind"])
	}
	for _, k := range []string{"late", "idle_cores", "etcd_leader_cpu_ms_per_write", "proxy_cpu_ms_per_write", "events_per_s", "host_p99_worst_ms", "loadavg"} {
		if _, ok := m[k]; !ok {
			t.Errorf("row lacks %q: %s", k, data)
		}
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("0, 2")
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("parseCounts(\"0, 2\") = %v, %v", got, err)
	}
	for _, bad := range []string{"", "-1", "1,x"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
}

func TestWritePlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p99.svg")
	rows := []fleetRow{
		{Hosts: 10, Proxies: 0, WritesPerS: 20, P99ms: 6},
		{Hosts: 1000, Proxies: 0, WritesPerS: 20, P99ms: 900},
		{Hosts: 10, Proxies: 2, WritesPerS: 20, P99ms: 9},
		{Hosts: 1000, Proxies: 2, WritesPerS: 20, P99ms: 400},
	}
	if err := writePlot(path, rows); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.HasPrefix(s, "<svg") || strings.Count(s, "<polyline") != 2 || !strings.Contains(s, "2 proxies, 20 writes/s") {
		t.Errorf("unexpected SVG:\n%s", s)
	}
	// --replot reads the rows back from --json output.
	var jsonl strings.Builder
	for _, r := range rows {
		r.Kind = "writes"
		printJSONRow(&jsonl, r)
	}
	printJSONRow(&jsonl, herdRow{Kind: "herd", Hosts: 10})
	in := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(in, []byte("progress line\n"+jsonl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replotFleet([]string{in}, path+"2"); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(path + "2")
	if err != nil || string(again) != s {
		t.Errorf("replot differs from the plot (%v)", err)
	}
	if err := writePlot(path, nil); err == nil {
		t.Error("writePlot of no rows succeeded")
	}
}
