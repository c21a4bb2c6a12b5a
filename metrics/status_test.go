package metrics

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/registry"
)

func newTestStatusPage(t *testing.T) (*Metrics, *registry.Store, *StatusPage, *time.Time) {
	t.Helper()
	m := New()
	store := loadedStore(t, registry.WithListener(m.StoreListener()))
	st := registry.Status{Ready: true, Revision: store.Revision(), LastContact: time.Now(), Loads: 1}
	p := m.NewStatusPage(store, fixedStatus(st), func() (bool, string) { return true, "ok" },
		StatusInfo{Settings: []Setting{{"ttl", "5s"}}, Endpoints: []string{"http://127.0.0.1:2379"}})
	clock := time.Now()
	p.now = func() time.Time { return clock }
	return m, store, p, &clock
}

// TestStatusCountsMatchTheSnapshot checks the page's counts against a walk
// of the snapshot done here, and the per-org rows.
func TestStatusCountsMatchTheSnapshot(t *testing.T) {
	_, store, p, _ := newTestStatusPage(t)
	d := p.Data()
	snap := store.Snapshot()
	z := Count(snap)
	started := 0
	snap.RangeOrgs(func(o *registry.Org) bool {
		for _, n := range o.AppNames() {
			for _, m := range o.App(n).Machines.All() {
				if m.State == registry.StateStarted {
					started++
				}
			}
		}
		return true
	})
	want := RegCounts{Orgs: z.Orgs, Apps: z.Apps, MachinesDeployed: z.Machines, MachinesStarted: started, Peers: z.Peers, Invalid: store.InvalidCount()}
	if d.Registry != want {
		t.Errorf("counts %+v, want %+v", d.Registry, want)
	}
	// The fixture: acme (web, empty; 2 deployed of which 1 started; 1 peer) and beta.
	if want.Orgs != 2 || want.MachinesDeployed != 3 || want.MachinesStarted != 2 || want.Invalid != 1 {
		t.Fatalf("fixture changed: %+v", want)
	}
	if len(d.Orgs) != 2 || d.Orgs[0].Name != "acme" || d.Orgs[0].Network != "fdaa:0:18::/48" ||
		d.Orgs[0].Machines != 2 || d.Orgs[0].Started != 1 || d.Orgs[0].Peers != 1 || d.Orgs[0].Serial != snap.Org("acme").Serial {
		t.Errorf("org rows %+v", d.Orgs)
	}
	if len(d.Invalid) != 1 || d.Invalid[0].Key != registry.DefaultPrefix+"machines/acme/web/0a09" || !strings.Contains(d.Invalid[0].Reason, "ip") {
		t.Errorf("recent invalid %+v, want machines/acme/web/0a09 with its reason", d.Invalid)
	}
	if !d.Ready || d.Etcd.State != "connected, watching" || d.Etcd.Revision != store.Revision() || d.Etcd.SnapshotAge == nil {
		t.Errorf("etcd %+v, ready %v", d.Etcd, d.Ready)
	}
}

// TestStatusRatesAndEvents feeds queries and syncer changes between
// samples and reads the rates and the change list back.
func TestStatusRatesAndEvents(t *testing.T) {
	m, store, p, clock := newTestStatusPage(t)
	st := registry.Status{Ready: true, Revision: store.Revision(), LastContact: *clock, Loads: 1}
	p.status = func() registry.Status { return st }
	p.tick()
	q := m.Queries()
	for range 50 {
		q.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Org: "acme"})
	}
	for range 20 {
		q.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Org: "acme", Transport: dnsserver.TCP})
	}
	*clock = clock.Add(10 * time.Second)
	st.Reconciles, st.Drift, st.Loads = 1, 2, 2
	p.tick()
	*clock = clock.Add(10 * time.Second) // the live sample: no queries since
	d := p.Data()
	if d.Queries.Totals["NOERROR"] != 50 || d.Queries.Totals["NXDOMAIN"] != 20 {
		t.Errorf("totals %v", d.Queries.Totals)
	}
	rates := map[string][]float64{}
	for _, s := range d.Queries.Series {
		for _, pt := range s.Points {
			rates[s.Rcode] = append(rates[s.Rcode], pt.PerSecond)
		}
	}
	if !reflect.DeepEqual(rates, map[string][]float64{"NOERROR": {5, 0}, "NXDOMAIN": {2, 0}}) {
		t.Errorf("rates %v, want NOERROR 5/s then 0, NXDOMAIN 2/s then 0", rates)
	}
	if len(d.Sync.Recent) != 1 || d.Sync.Recent[0].Loads != 1 || d.Sync.Recent[0].Drift != 2 || d.Sync.Recent[0].Reconciles != 1 {
		t.Errorf("sync changes %+v", d.Sync.Recent)
	}
	if !strings.Contains(string(d.Queries.Chart), "<polyline") || !strings.Contains(string(d.Queries.Chart), "NXDOMAIN") {
		t.Errorf("rate chart lacks lines: %s", d.Queries.Chart)
	}
	// Only sampleCount samples are kept.
	for range 2 * sampleCount {
		p.tick()
	}
	if len(p.samples) != sampleCount {
		t.Errorf("%d samples kept, want %d", len(p.samples), sampleCount)
	}
}

// TestStatusPropagation checks the histogram's buckets and quantiles.
func TestStatusPropagation(t *testing.T) {
	m, _, p, _ := newTestStatusPage(t)
	for range 90 {
		m.prop.hist.Observe(0.0015) // the (1ms, 2ms] bucket
	}
	for range 10 {
		m.prop.hist.Observe(0.1)
	}
	d := p.Data()
	ps := d.Propagation
	if ps.Count != 100 || len(ps.Buckets) != 19 || ps.Buckets[1].Count != 90 {
		t.Fatalf("propagation %+v", ps)
	}
	if *ps.P50 <= 0.001 || *ps.P50 > 0.002 || *ps.P99 <= 0.064 || *ps.P99 > 0.128 {
		t.Errorf("p50 %v (want in (1ms, 2ms]), p99 %v (want in (64ms, 128ms])", *ps.P50, *ps.P99)
	}
	if !strings.Contains(string(ps.Chart), "<rect") {
		t.Errorf("propagation chart has no bars")
	}
}

// TestStatusHTTP serves the page: HTML with the counts, JSON that parses
// back into the same data, 404 elsewhere, read-only.
func TestStatusHTTP(t *testing.T) {
	_, _, p, _ := newTestStatusPage(t)
	srv := httptest.NewServer(p)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`id="orgs">2<`, `id="machines-started">2<`, `id="machines-deployed">3<`, `id="peers">1<`, "machines/acme/web/0a09", "<svg", "fdaa:0:19::/48", "<code>ttl</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") && !strings.Contains(body, "http://127.0.0.1:2379") {
		t.Errorf("page has a script or an external reference")
	}
	resp, body = get("/?format=json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /?format=json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d StatusData
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	want := p.Data()
	want.Now, d.Now = time.Time{}, time.Time{}
	want.Propagation.Chart, want.Queries.Chart = "", ""
	want.Etcd.SinceLastContact, d.Etcd.SinceLastContact = nil, nil
	want.Etcd.SnapshotAge, d.Etcd.SnapshotAge = nil, nil
	want.Queries.Series, d.Queries.Series = nil, nil // sampled at different moments
	for i := range want.Invalid {
		want.Invalid[i].Since = want.Invalid[i].Since.UTC()
		d.Invalid[i].Since = d.Invalid[i].Since.UTC()
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("JSON decodes to\n%+v\nwant\n%+v", d, want)
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
	if resp, _ := get("/?format=xml"); resp.StatusCode != 400 {
		t.Errorf("GET /?format=xml: %d, want 400", resp.StatusCode)
	}
	r, err := http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", r.StatusCode)
	}
}

// TestStatusWhileTheRegistryChanges views the page while the store takes
// batches and the sampler ticks (run with -race).
func TestStatusWhileTheRegistryChanges(t *testing.T) {
	_, store, p, _ := newTestStatusPage(t)
	p.now = time.Now
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			store.Apply(int64(100+i), []registry.Event{{Key: registry.DefaultPrefix + "peers/beta/p", Value: []byte(`{"ip":"fdaa:0:19::9"}`)}})
			if i%20 == 0 {
				p.tick()
			}
		}
	}()
	for range 50 {
		if d := p.Data(); d.Registry.Orgs != 2 {
			t.Fatalf("orgs %d", d.Registry.Orgs)
		}
	}
	<-done
	if d := p.Data(); d.Registry.Peers != 2 || d.Etcd.SinceLastEvent == nil {
		t.Errorf("after the batches: %+v, since last event %v", d.Registry, d.Etcd.SinceLastEvent)
	}
}
