package metrics

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshdns/meshdns/registry"
)

// The status page (issue #14): one server-rendered HTML page at / on the
// --http listener, with ?format=json for scripts. It lists every org, so
// it belongs on the loopback-only listener (docs/deploy.md).

const (
	// sampleInterval is how often the counters behind the rate charts
	// are sampled, and sampleCount how many samples are kept (5 minutes).
	sampleInterval = 10 * time.Second
	sampleCount    = 30
	// maxOrgRows bounds the per-org table (the first ones by name).
	maxOrgRows = 1000
	// maxSyncEvents is how many reload/reconcile/drift changes are kept.
	maxSyncEvents = 20
)

//go:embed status.html.tmpl
var statusFS embed.FS

var statusTmpl = template.Must(template.New("status.html.tmpl").Funcs(template.FuncMap{
	"ago":  agoText,
	"time": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"add":  func(a, b int) int { return a + b },
	"dur": func(secs *float64) string {
		if secs == nil {
			return "-"
		}
		return agoText(secs)
	},
}).ParseFS(statusFS, "status.html.tmpl"))

// Setting is one configuration value in force, as the startup log shows it.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// StatusInfo is what the status page shows about the process itself.
type StatusInfo struct {
	Settings  []Setting // the flags in force
	Endpoints []string  // etcd endpoints in use
}

// StatusPage serves the operator's status page. Start its sampler with Run.
type StatusPage struct {
	info    StatusInfo
	version string
	started time.Time
	gather  prometheus.Gatherer
	store   *registry.Store
	status  StatusFunc
	ready   ReadyFunc
	prop    *propagation
	now     func() time.Time

	interval time.Duration
	mu       sync.Mutex
	samples  []sample // oldest first, at most sampleCount
	events   []SyncEvent
	orgs     orgCache
}

// sample is the counters behind the charts at one moment.
type sample struct {
	t        time.Time
	rcodes   map[string]float64 // meshdns_dns_requests_total by rcode
	sync     registry.Status
	gathered bool
}

// NewStatusPage returns the status page of this server. ready is what
// /readyz reports.
func (m *Metrics) NewStatusPage(store *registry.Store, status StatusFunc, ready ReadyFunc, info StatusInfo) *StatusPage {
	return &StatusPage{
		info: info, version: Version(), started: time.Now(),
		gather: m.reg, store: store, status: status, ready: ready, prop: m.prop,
		now: time.Now, interval: sampleInterval,
	}
}

// Version is the running build's module version ("(devel)" when built
// from a work tree).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Run samples the counters every 10 s until ctx ends.
func (p *StatusPage) Run(ctx context.Context) {
	p.tick()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick()
		}
	}
}

func (p *StatusPage) tick() {
	s := p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.samples); n > 0 {
		if ev, changed := syncChange(p.samples[n-1], s); changed {
			p.events = append(p.events, ev)
			if len(p.events) > maxSyncEvents {
				p.events = slices.Delete(p.events, 0, len(p.events)-maxSyncEvents)
			}
		}
	}
	p.samples = append(p.samples, s)
	if len(p.samples) > sampleCount {
		p.samples = slices.Delete(p.samples, 0, len(p.samples)-sampleCount)
	}
}

func (p *StatusPage) sample() sample {
	s := sample{t: p.now(), rcodes: map[string]float64{}, sync: p.status()}
	mfs, err := p.gather.Gather()
	if err != nil && len(mfs) == 0 {
		return s
	}
	s.gathered = true
	for _, mf := range mfs {
		if mf.GetName() != "meshdns_dns_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			s.rcodes[label(m, "rcode")] += m.GetCounter().GetValue()
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// SyncEvent is a change of the syncer's counters between two samples.
type SyncEvent struct {
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	Loads         uint64    `json:"loads"`
	WatchRestarts uint64    `json:"watch_restarts"`
	Reconciles    uint64    `json:"reconciles"`
	Drift         uint64    `json:"drift_keys"`
}

func syncChange(a, b sample) (SyncEvent, bool) {
	d := func(x, y uint64) uint64 {
		if y < x {
			return 0
		}
		return y - x
	}
	ev := SyncEvent{From: a.t, To: b.t,
		Loads: d(a.sync.Loads, b.sync.Loads), WatchRestarts: d(a.sync.WatchRestarts, b.sync.WatchRestarts),
		Reconciles: d(a.sync.Reconciles, b.sync.Reconciles), Drift: d(a.sync.Drift, b.sync.Drift)}
	return ev, ev.Loads+ev.WatchRestarts+ev.Reconciles+ev.Drift > 0
}

// StatusData is the page's content; ?format=json returns it as is.
type StatusData struct {
	Version     string                  `json:"version"`
	GoVersion   string                  `json:"go_version"`
	Now         time.Time               `json:"now"`
	Started     time.Time               `json:"started"`
	Ready       bool                    `json:"ready"`
	Reason      string                  `json:"ready_reason"`
	Settings    []Setting               `json:"settings"`
	Etcd        EtcdStatus              `json:"etcd"`
	Registry    RegCounts               `json:"registry"`
	Invalid     []registry.InvalidValue `json:"recent_invalid"`
	Propagation PropStatus              `json:"propagation"`
	Queries     QueryStatus             `json:"queries"`
	Sync        SyncStatus              `json:"sync"`
	Orgs        []OrgRow                `json:"orgs"`
	OrgsTotal   int                     `json:"orgs_total"`
}

// EtcdStatus is the syncer's view of etcd. Durations are seconds, null
// when the thing never happened.
type EtcdStatus struct {
	Endpoints        []string `json:"endpoints"`
	State            string   `json:"state"`
	Connected        bool     `json:"connected"`
	ClusterID        string   `json:"cluster_id,omitempty"`
	Revision         int64    `json:"watch_revision"`
	SinceLastEvent   *float64 `json:"seconds_since_last_event"`
	SinceLastContact *float64 `json:"seconds_since_last_contact"`
	SnapshotAge      *float64 `json:"snapshot_age_seconds"`
	LastError        string   `json:"last_error,omitempty"`
}

// RegCounts counts what the served snapshot holds.
type RegCounts struct {
	Orgs             int `json:"orgs"`
	Apps             int `json:"apps"`
	MachinesStarted  int `json:"machines_started"`
	MachinesDeployed int `json:"machines_deployed"`
	Peers            int `json:"peers"`
	Invalid          int `json:"invalid_values"`
}

// PropStatus is the write→visible propagation histogram.
type PropStatus struct {
	Count   uint64        `json:"count"`
	SumSecs float64       `json:"sum_seconds"`
	P50     *float64      `json:"p50_seconds"`
	P90     *float64      `json:"p90_seconds"`
	P99     *float64      `json:"p99_seconds"`
	Buckets []PropBucket  `json:"buckets"`
	Chart   template.HTML `json:"-"`
}

// PropBucket counts the writes whose delay was at most LE seconds and more
// than the previous bucket's (+Inf for the last).
type PropBucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// MarshalJSON writes +Inf as the string "+Inf" (JSON has no infinity).
func (b PropBucket) MarshalJSON() ([]byte, error) {
	le := strconv.FormatFloat(b.LE, 'g', -1, 64)
	if math.IsInf(b.LE, 1) {
		le = `"+Inf"`
	}
	return []byte(fmt.Sprintf(`{"le":%s,"count":%d}`, le, b.Count)), nil
}

// QueryStatus is the queries answered, in total and per second over the
// last minutes, by response code.
type QueryStatus struct {
	Totals          map[string]float64 `json:"totals"`
	IntervalSeconds float64            `json:"interval_seconds"`
	Series          []RateSeries       `json:"rates"`
	Chart           template.HTML      `json:"-"`
}

// RateSeries is one response code's rate at each sample.
type RateSeries struct {
	Rcode  string      `json:"rcode"`
	Points []RatePoint `json:"points"`
}

// RatePoint is the mean rate over the interval from From to T.
type RatePoint struct {
	From      time.Time `json:"from"`
	T         time.Time `json:"t"`
	PerSecond float64   `json:"per_second"`
}

// SyncStatus is the syncer's counters and their recent changes.
type SyncStatus struct {
	Loads         uint64      `json:"loads"`
	WatchRestarts uint64      `json:"watch_restarts"`
	Reconciles    uint64      `json:"reconciles"`
	Drift         uint64      `json:"drift_keys"`
	Recent        []SyncEvent `json:"recent"`
}

// OrgRow is one org's summary.
type OrgRow struct {
	Name     string `json:"name"`
	Network  string `json:"network"`
	Apps     int    `json:"apps"`
	Machines int    `json:"machines_deployed"`
	Started  int    `json:"machines_started"`
	Peers    int    `json:"peers"`
	Serial   uint32 `json:"serial"`
}

// Data collects the page's content now.
func (p *StatusPage) Data() StatusData {
	now := p.now()
	live := p.sample()
	ok, reason := p.ready()
	st := live.sync
	d := StatusData{
		Version: p.version, GoVersion: runtime.Version(), Now: now.UTC(), Started: p.started.UTC(),
		Ready: ok, Reason: reason, Settings: p.info.Settings,
	}
	if d.Settings == nil {
		d.Settings = []Setting{}
	}

	// etcd
	e := EtcdStatus{Endpoints: p.info.Endpoints, Revision: p.store.Revision(), LastError: oneLine(st.LastError)}
	if e.Endpoints == nil {
		e.Endpoints = []string{}
	}
	if st.ClusterID != 0 {
		e.ClusterID = fmt.Sprintf("%x", st.ClusterID)
	}
	since := func(unixNano int64) *float64 {
		if unixNano <= 0 {
			return nil
		}
		s := now.Sub(time.Unix(0, unixNano)).Seconds()
		return &s
	}
	if contacted(st) {
		e.SinceLastContact = since(st.LastContact.UnixNano())
	}
	e.SinceLastEvent = since(p.prop.lastEvent.Load())
	e.SnapshotAge = since(p.prop.lastPublish.Load())
	switch {
	case !contacted(st):
		e.State = "not reached yet"
	case st.Ready:
		e.State = "connected, watching"
		e.Connected = true
	case *e.SinceLastContact < 5:
		e.State = "connected, watch restarting"
		e.Connected = true
	default:
		e.State = "unreachable for " + agoText(e.SinceLastContact)
	}
	d.Etcd = e

	// registry
	snap := p.store.Snapshot()
	rows, counts := p.orgs.get(snap)
	counts.Invalid = p.store.InvalidCount()
	d.Registry = counts
	d.OrgsTotal = len(rows)
	d.Orgs = rows[:min(len(rows), maxOrgRows)]
	d.Invalid = p.store.RecentInvalid()
	if d.Invalid == nil {
		d.Invalid = []registry.InvalidValue{}
	}

	p.mu.Lock()
	samples := append(slices.Clone(p.samples), live)
	d.Sync = SyncStatus{Loads: st.Loads, WatchRestarts: st.WatchRestarts, Reconciles: st.Reconciles, Drift: st.Drift,
		Recent: slices.Clone(p.events)}
	p.mu.Unlock()
	slices.Reverse(d.Sync.Recent) // newest first
	if d.Sync.Recent == nil {
		d.Sync.Recent = []SyncEvent{}
	}
	d.Queries = queryStatus(samples, p.interval)
	d.Queries.Chart = rateChart(d.Queries.Series)
	d.Propagation = p.propStatus()
	d.Propagation.Chart = propChart(d.Propagation.Buckets)
	return d
}

// queryStatus turns samples into per-interval rates by rcode.
func queryStatus(samples []sample, interval time.Duration) QueryStatus {
	q := QueryStatus{Totals: map[string]float64{}, IntervalSeconds: interval.Seconds(), Series: []RateSeries{}}
	// Leave out samples whose gathering failed.
	samples = slices.DeleteFunc(samples, func(s sample) bool { return !s.gathered })
	if len(samples) == 0 {
		return q
	}
	last := samples[len(samples)-1]
	for rc, v := range last.rcodes {
		q.Totals[rc] = v
	}
	var codes []string
	for rc := range q.Totals {
		codes = append(codes, rc)
	}
	sort.Slice(codes, func(i, j int) bool {
		return rcodeOrder(codes[i]) < rcodeOrder(codes[j]) || rcodeOrder(codes[i]) == rcodeOrder(codes[j]) && codes[i] < codes[j]
	})
	for _, rc := range codes {
		s := RateSeries{Rcode: rc, Points: []RatePoint{}}
		for i := 1; i < len(samples); i++ {
			dt := samples[i].t.Sub(samples[i-1].t).Seconds()
			if dt <= 0 {
				continue
			}
			s.Points = append(s.Points, RatePoint{From: samples[i-1].t.UTC(), T: samples[i].t.UTC(), PerSecond: max(0, samples[i].rcodes[rc]-samples[i-1].rcodes[rc]) / dt})
		}
		q.Series = append(q.Series, s)
	}
	return q
}

// rcodeOrder puts the common response codes first.
func rcodeOrder(rc string) int {
	switch rc {
	case "NOERROR":
		return 0
	case "NXDOMAIN":
		return 1
	case "REFUSED":
		return 2
	case "SERVFAIL":
		return 3
	}
	return 4
}

// propStatus reads the propagation histogram.
func (p *StatusPage) propStatus() PropStatus {
	ps := PropStatus{Buckets: []PropBucket{}}
	var m dto.Metric
	if err := p.prop.hist.Write(&m); err != nil || m.Histogram == nil {
		return ps
	}
	h := m.Histogram
	ps.Count, ps.SumSecs = h.GetSampleCount(), h.GetSampleSum()
	var prev uint64
	for _, b := range h.GetBucket() {
		c := b.GetCumulativeCount()
		ps.Buckets = append(ps.Buckets, PropBucket{LE: b.GetUpperBound(), Count: c - prev})
		prev = c
	}
	ps.Buckets = append(ps.Buckets, PropBucket{LE: math.Inf(1), Count: ps.Count - prev})
	ps.P50, ps.P90, ps.P99 = quantile(ps.Buckets, ps.Count, 0.5), quantile(ps.Buckets, ps.Count, 0.9), quantile(ps.Buckets, ps.Count, 0.99)
	return ps
}

// quantile estimates q from the buckets as Prometheus's
// histogram_quantile does: linearly within the bucket holding it.
func quantile(bs []PropBucket, count uint64, q float64) *float64 {
	if count == 0 {
		return nil
	}
	rank := q * float64(count)
	var cum float64
	lower := 0.0
	for _, b := range bs {
		next := cum + float64(b.Count)
		if next >= rank && b.Count > 0 {
			if math.IsInf(b.LE, 1) {
				v := lower // beyond the last bound: report that bound
				return &v
			}
			v := lower + (b.LE-lower)*(rank-cum)/float64(b.Count)
			return &v
		}
		cum = next
		if !math.IsInf(b.LE, 1) {
			lower = b.LE
		}
	}
	v := lower
	return &v
}

// orgCache computes the per-org rows and the counts once per snapshot,
// remembering the snapshot weakly (as sizeCache does).
type orgCache struct {
	mu     sync.Mutex
	snap   weak.Pointer[registry.Snapshot]
	rows   []OrgRow
	counts RegCounts
}

func (c *orgCache) get(s *registry.Snapshot) ([]OrgRow, RegCounts) {
	if s == nil {
		return []OrgRow{}, RegCounts{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap.Value() == s {
		return c.rows, c.counts
	}
	rows := make([]OrgRow, 0, s.OrgCount())
	var z RegCounts
	s.RangeOrgs(func(o *registry.Org) bool {
		r := OrgRow{Name: o.Name, Network: o.Network.String(), Apps: len(o.AppNames()), Peers: len(o.PeerNames()), Serial: o.Serial}
		for _, n := range o.AppNames() {
			a := o.App(n)
			if a == nil {
				continue
			}
			r.Machines += a.Machines.Len()
			for _, m := range a.Machines.All() {
				if m.Started() {
					r.Started++
				}
			}
		}
		z.Orgs++
		z.Apps += r.Apps
		z.MachinesDeployed += r.Machines
		z.MachinesStarted += r.Started
		z.Peers += r.Peers
		rows = append(rows, r)
		return true
	})
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	c.snap, c.rows, c.counts = weak.Make(s), rows, z
	return rows, z
}

// ServeHTTP serves the page at / (HTML, or JSON with ?format=json).
func (p *StatusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		text(w, http.StatusMethodNotAllowed, "the status page is read-only: use GET")
		return
	}
	d := p.Data()
	w.Header().Set("Cache-Control", "no-store")
	switch f := r.URL.Query().Get("format"); f {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d)
	case "", "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusTmpl.Execute(w, d); err != nil {
			// Headers are sent; the page ends where it failed.
			fmt.Fprintf(w, "\n<p>error rendering the page: %s</p>\n", template.HTMLEscapeString(err.Error()))
		}
	default:
		text(w, http.StatusBadRequest, fmt.Sprintf("format %q: want html or json", f))
	}
}

// ServeStatus adds the status page at /. Call it before Start.
func (s *HTTPServer) ServeStatus(p *StatusPage) { s.mux.Handle("/", p) }

// agoText renders a number of seconds (nil: never) for people.
func agoText(secs *float64) string {
	if secs == nil {
		return "never"
	}
	d := time.Duration(*secs * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *PropBucket) UnmarshalJSON(data []byte) error {
	var v struct {
		LE    json.RawMessage `json:"le"`
		Count uint64          `json:"count"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	b.Count = v.Count
	if string(v.LE) == `"+Inf"` {
		b.LE = math.Inf(1)
		return nil
	}
	return json.Unmarshal(v.LE, &b.LE)
}
