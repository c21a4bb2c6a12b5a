package ops

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

const (
	alertRules = "../../deploy/prometheus/meshdns-alerts.yml"
	dashboard  = "../../deploy/grafana/meshdns-dashboard.json"
)

// metricName matches the metrics a rule or panel reads.
var metricName = regexp.MustCompile(`\b(?:meshdns|process|go)_[a-z0-9_]+\b`)

// The shipped alerting rules pass promtool.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := etcdtest.RequireTool(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", alertRules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertRules, err, out)
	}
}

// Every metric an alert or a dashboard panel uses is one a running meshdns
// exports: a rule over a metric that does not exist never fires, and a
// panel over one stays empty, both silently.
func TestDashboardsAndAlertsUseExistingMetrics(t *testing.T) {
	used := map[string][]string{} // metric -> where
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(rules), -1) {
		used[n] = append(used[n], filepath.Base(alertRules))
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if len(dash.Panels) == 0 {
		t.Fatalf("%s has no panels", dashboard)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				used[n] = append(used[n], "panel "+p.Title)
			}
		}
	}

	// A meshdns that has done a bit of everything: answered from zones and
	// cache, forwarded, taken a TCP query.
	up := startUpstream(t)
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--http", h, "--upstream", up.addr))
	readyz(t, h, http.StatusOK, 20*time.Second)
	for _, q := range []struct {
		name  string
		qtype uint16
		tcp   bool
	}{{"web.internal", dns.TypeAAAA, false}, {"web.internal", dns.TypeAAAA, false}, {"nope.internal", dns.TypeAAAA, false},
		{"example.com", dns.TypeA, false}, {"vms.web.internal", dns.TypeTXT, true}} {
		m.Query(t, q.name, q.qtype, harness.QueryOptions{TCP: q.tcp})
	}
	_, body, err := get(h, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[f[2]+s] = true
				}
			}
		}
	}
	var missing []string
	for n, where := range used {
		if !exported[n] {
			missing = append(missing, n+" (used by "+strings.Join(uniq(where), ", ")+")")
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		t.Errorf("not in /metrics: %s", n)
	}
	// Panels the dashboard must keep (#14): each metric here is read by one.
	for _, n := range []string{"meshdns_dns_rate_limited_total"} {
		if !slices.ContainsFunc(used[n], func(w string) bool { return strings.HasPrefix(w, "panel ") }) {
			t.Errorf("no dashboard panel reads %s", n)
		}
	}
	// Series that exist from the start, at zero, so a panel or alert over
	// them has data before the first event they count.
	for _, series := range []string{
		`meshdns_dns_rate_limited_total{action="drop",transport="udp"} 0`,
		`meshdns_dns_rate_limited_total{action="slip",transport="udp"} 0`,
		`meshdns_dns_rate_limited_total{action="close",transport="tcp"} 0`,
	} {
		if !slices.Contains(strings.Split(body, "\n"), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if len(used) < 15 {
		t.Errorf("only %d metrics used by the dashboard and alerts; the extraction is broken", len(used))
	}
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
