package faults

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// badValues are keys (below the prefix) and values that break SPEC §3,
// written raw, bypassing every writer check.
var badValues = []struct{ key, value, why string }{
	{"machines/acme/web/b001", `{"region":"ams","ip":"fdaa:0:18:1::b1","state":"started"`, "broken JSON"},
	{"machines/acme/web/b002", `{"region":"ams","ip":"fdaa:0:99:1::b2","state":"started"}`, "address outside the org"},
	{"machines/acme/web/a003", `{"region":"iad","ip":"fdaa:0:18:1::3","state":"exploded"}`, "unknown state, over a valid machine"},
	{"machines/acme/web/b004", `null`, "JSON null"},
	{"machines/acme/web/b005", `["ams","fdaa:0:18:1::b5"]`, "JSON array"},
	{"machines/acme/web/b006", `{"region":"amsterdam","ip":"fdaa:0:18:1::b6","state":"started"}`, "region not a code"},
	{"machines/acme/web/b007", `{"region":"ams","ip":"10.0.0.7","state":"started"}`, "IPv4 address"},
	{"machines/acme/web", `{"region":"ams","ip":"fdaa:0:18:1::b8","state":"started"}`, "wrong key shape: no machine id"},
	{"machines/acme/web/b009/x", `{"region":"ams","ip":"fdaa:0:18:1::b9","state":"started"}`, "wrong key shape: extra segment"},
	{"machines/acme/Web/b00a", `{"region":"ams","ip":"fdaa:0:18:1::ba","state":"started"}`, "wrong key shape: upper-case app"},
	{"machines/acme/web/not-hex", `{"region":"ams","ip":"fdaa:0:18:1::bb","state":"started"}`, "wrong key shape: id not hex"},
	{"gizmos/acme/web", `{}`, "wrong key shape: unknown kind"},
	{"orgs/evil", `{"network":"10.0.0.0/8"}`, "org network outside fdaa::/16"},
	{"peers/acme/lap", `{"ip":"fdaa:0:77::2"}`, "peer outside the org"},
}

// TestBadValues writes values that break the rules straight into etcd:
// each must be skipped (not served, and a valid value it replaced is not
// served either), counted in meshdns_registry_invalid_values, and logged
// with its key, while its neighbours are served — both when the values
// arrive by watch and when a server loads them in full. Repairing or
// deleting them brings the count back to 0.
func TestBadValues(t *testing.T) {
	t.Parallel()
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	seed(t, cli, []string{"web"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(1, 1)),
		machineItem("web", "a002", "fra", ip(1, 2)),
		machineItem("web", "a003", "iad", ip(1, 3)),
	})
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(e.Endpoints()...), args())
	waitMatch(t, "the valid registry served", 10*time.Second, readModel(t, cli).listProbes([]string{"web"}), m.Addr())
	if n := metric(t, m.HTTPAddr(), "meshdns_registry_invalid_values"); n != 0 {
		t.Fatalf("meshdns_registry_invalid_values = %v before any bad value", n)
	}

	for _, b := range badValues {
		putRaw(t, cli, b.key, b.value)
	}
	// A valid neighbour written after them: once it is served, the watch
	// has applied the bad values too (events arrive in order).
	putRaw(t, cli, "machines/acme/web/a004", `{"region":"syd","ip":"fdaa:0:18:1::4","state":"started"}`)
	waitMatch(t, "the neighbour written after the bad values", 10*time.Second,
		[]probe{{name: "a004.vm.web.internal", qtype: dns.TypeAAAA, want: wantAAAA("fdaa:0:18:1::4")}}, m.Addr())
	checkBadValuesSkipped(t, m, "by watch")

	m2 := harness.StartMeshdns(t, harness.EtcdEndpoints(e.Endpoints()...), args())
	checkBadValuesSkipped(t, m2, "at a full load")

	// Repair a003, delete the rest: nothing is invalid any more.
	putRaw(t, cli, "machines/acme/web/a003", `{"region":"iad","ip":"fdaa:0:18:1::3","state":"started"}`)
	for _, b := range badValues[1:] {
		if b.key == "machines/acme/web/a003" {
			continue
		}
		ctx, cancel := ctx10s()
		if _, err := cli.Delete(ctx, prefix+b.key); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := cli.Delete(ctx, prefix+badValues[0].key); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*harness.Meshdns{m, m2} {
		waitMatch(t, "a003 served again once repaired", 10*time.Second,
			[]probe{{name: "a003.vm.web.internal", qtype: dns.TypeAAAA, want: wantAAAA("fdaa:0:18:1::3")}}, s.Addr())
		harness.Poll(t, 10*time.Second, 20*time.Millisecond, "meshdns_registry_invalid_values back to 0", func() (bool, string) {
			n := metric(t, s.HTTPAddr(), "meshdns_registry_invalid_values")
			return n == 0, fmt.Sprintf("%v", n)
		})
		if code, body, _ := httpGet(s.HTTPAddr(), "/readyz"); code != http.StatusOK {
			t.Errorf("/readyz %d %q with bad values in the registry, want 200: they are skipped, not fatal", code, body)
		}
	}
}

// checkBadValuesSkipped checks what m serves and reports about badValues.
func checkBadValuesSkipped(t *testing.T, m *harness.Meshdns, how string) {
	t.Helper()
	ps := []probe{
		// The neighbours: a001, a002 and a004; a003's valid value was
		// replaced by an invalid one, so it is gone.
		{name: "web.internal", qtype: dns.TypeAAAA, want: wantAAAA("fdaa:0:18:1::1", "fdaa:0:18:1::2", "fdaa:0:18:1::4")},
		{name: "vms.web.internal", qtype: dns.TypeTXT, want: wantTXT("a001 ams,a002 fra,a004 syd")},
		{name: "all.vms.web.internal", qtype: dns.TypeTXT, want: wantTXT("a001 ams,a002 fra,a004 syd")},
		{name: "_apps.internal", qtype: dns.TypeTXT, want: wantTXT("web")},
		{name: "_peer.internal", qtype: dns.TypeTXT, want: wantTXT("")},
		{name: "lap._peer.internal", qtype: dns.TypeAAAA, want: wantRcode(dns.RcodeNameError)},
	}
	for _, id := range []string{"b001", "b002", "a003", "b004", "b005", "b006", "b007", "b009", "b00a"} {
		ps = append(ps, probe{name: id + ".vm.web.internal", qtype: dns.TypeAAAA, want: wantRcode(dns.RcodeNameError)})
	}
	if wrong := mismatches(m.Addr(), ps); len(wrong) > 0 {
		t.Errorf("%s: %d answers wrong:\n  %s", how, len(wrong), strings.Join(wrong, "\n  "))
	}
	if n := metric(t, m.HTTPAddr(), "meshdns_registry_invalid_values"); int(n) != len(badValues) {
		t.Errorf("%s: meshdns_registry_invalid_values = %v, want %d", how, n, len(badValues))
	}
	logged := map[string]string{}
	for _, e := range logsWith(m, "registry value skipped") {
		logged[strings.TrimPrefix(e.Str("key"), prefix)] = e.Str("reason")
	}
	var lines []string
	for _, b := range badValues {
		reason, ok := logged[b.key]
		if !ok || reason == "" {
			t.Errorf("%s: no \"registry value skipped\" log entry with a reason for key %s (%s)", how, b.key, b.why)
			continue
		}
		lines = append(lines, fmt.Sprintf("%s (%s): %s", b.key, b.why, reason))
	}
	sort.Strings(lines)
	if how == "by watch" {
		t.Logf("%s: %d values skipped and logged:\n  %s", how, len(lines), strings.Join(lines, "\n  "))
	} else {
		t.Logf("%s: the same %d values skipped and logged", how, len(lines))
	}
}
