package faults

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// outage is how long etcd stays away in TestEtcdOutage.
const outage = 30 * time.Second

// TestEtcdOutage takes etcd away entirely for 30 s while clients ask
// meshdns 200 questions a second. Every one must be answered right from the
// last snapshot (no SERVFAIL, no empty answer); /readyz must turn 503 with
// a reason, meshdns_registry_snapshot_age_seconds must grow with the
// outage, and a warning must say how long etcd has been away. When etcd
// returns, a new write must reach DNS and /readyz must be 200 again.
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	c := etcdtest.Cluster(t, 1)
	cli := c.Client(t)
	w := registry.NewWriter(cli, prefix)
	// App late gets its first machine once etcd is back.
	seed(t, cli, []string{"web", "db", "late"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(1, 1)),
		machineItem("web", "a002", "fra", ip(1, 2)),
		machineItem("web", "a003", "iad", ip(1, 3)),
		machineItem("db", "d001", "ams", ip(2, 1)),
		{Org: orgName, App: "db", ID: "d002", Region: "fra", IP: ip(2, 2), State: registry.StateStopped},
	})
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args())
	h := m.HTTPAddr()
	mo := readModel(t, cli)
	probes := []probe{
		{name: "web.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(1, 1).String(), ip(1, 2).String(), ip(1, 3).String())},
		mo.vmProbe(appID{"web", "a002"}),
		mo.vmProbe(appID{"db", "d002"}), // NODATA: stopped
		{name: "vms.db.internal", qtype: dns.TypeTXT, want: wantTXT(mo.vms("db", false))},
		{name: "all.vms.db.internal", qtype: dns.TypeTXT, want: wantTXT(mo.vms("db", true))},
		{name: "_apps.internal", qtype: dns.TypeTXT, want: wantTXT("db,late,web")},
	}
	waitMatch(t, "the registry served", 10*time.Second, probes, m.Addr())
	waitReadyz(t, h, http.StatusOK, 20*time.Second)

	q := startQuerier(t, m.Addr(), 5*time.Millisecond, time.Second, probes...)
	c.Member(0).Kill()
	down := time.Now()

	body, took := waitReadyz(t, h, http.StatusServiceUnavailable, outage-5*time.Second)
	t.Logf("/readyz turned 503 %v into the outage: %q", took.Round(time.Millisecond), body)
	if !strings.Contains(body, "etcd") {
		t.Errorf("/readyz reason %q does not name etcd", body)
	}
	age1, at1 := metric(t, h, "meshdns_registry_snapshot_age_seconds"), time.Now()
	// The outage itself: /readyz must stay 503 throughout.
	for time.Since(down) < outage {
		if code, b, err := httpGet(h, "/readyz"); err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("/readyz %v into the outage: %d %q %v, want 503", time.Since(down).Round(time.Second), code, b, err)
			break
		}
		time.Sleep(time.Second)
	}
	age2, at2 := metric(t, h, "meshdns_registry_snapshot_age_seconds"), time.Now()
	t.Logf("meshdns_registry_snapshot_age_seconds %.1f → %.1f over %v", age1, age2, at2.Sub(at1).Round(time.Millisecond))
	if grew := age2 - age1; grew < at2.Sub(at1).Seconds()-1 {
		t.Errorf("snapshot age grew by %.1f s over %v of outage", grew, at2.Sub(at1).Round(time.Second))
	}
	if age2 < (outage - 5*time.Second).Seconds() {
		t.Errorf("snapshot age %.1f s after a %v outage", age2, outage)
	}
	warns := logsWith(m, "answering from the last snapshot")
	if len(warns) == 0 {
		t.Errorf("no warning that meshdns answers from the last snapshot")
	} else {
		e := warns[len(warns)-1]
		t.Logf("logged %d warnings, the last: %s %q since_last_contact=%v error=%q", len(warns), e.Level(), e.Msg(), e["since_last_contact"], e.Str("error"))
		if e["since_last_contact"] == nil {
			t.Errorf("the warning does not say how long etcd has been away: %v", e)
		}
	}

	c.Member(0).Start()
	up := time.Now()
	// Into another app, so that the answers the querier checks stay as
	// they were.
	mc := registry.Machine{Org: orgName, App: "late", ID: "e001", Region: "syd", IP: ip(5, 1), State: registry.StateStarted}
	if _, err := retry(func(ctx context.Context) error { return w.PutMachine(ctx, mc) }); err != nil {
		t.Fatalf("write after etcd returned: %v", err)
	}
	newVM := probe{name: "e001.vm.late.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(5, 1).String())}
	took = waitMatch(t, "a write made after etcd returned", 20*time.Second, []probe{newVM}, m.Addr())
	t.Logf("etcd back: a new write served %v after etcd was started (%v after the write)", time.Since(up).Round(time.Millisecond), took.Round(time.Millisecond))
	body, took = waitReadyz(t, h, http.StatusOK, 20*time.Second)
	t.Logf("/readyz %q %v after etcd was started", body, time.Since(up).Round(time.Millisecond))
	requireNoFailures(t, "queries during the outage", q.Stop())
	t.Logf("snapshot age now %.1f s", metric(t, h, "meshdns_registry_snapshot_age_seconds"))
}
