package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/metrics"
	"github.com/meshdns/meshdns/registry"
)

// statusFixture is a registry whose counts are known by construction:
// org i has i+1 apps, each with machines started, started, stopped and
// destroyed, and i peers; two more keys hold values that are not served.
const statusOrgs = 3

var statusWant = metrics.RegCounts{Orgs: 3, Apps: 1 + 2 + 3, MachinesStarted: 6 * 2, MachinesDeployed: 6 * 3, Peers: 0 + 1 + 2, Invalid: 2}

func statusDoc() []byte {
	var orgs, apps, machines, peers []string
	states := []string{"started", "started", "stopped", "destroyed"}
	for o := range statusOrgs {
		orgs = append(orgs, fmt.Sprintf(`{"name":"org%d","network":"fdaa:0:%x::/48"}`, o, 0x200+o))
		for a := range o + 1 {
			apps = append(apps, fmt.Sprintf(`{"org":"org%d","name":"app%d"}`, o, a))
			for m, st := range states {
				machines = append(machines, fmt.Sprintf(`{"org":"org%d","app":"app%d","id":"%014x","region":"ams","ip":"fdaa:0:%x:%x::%x","state":%q}`,
					o, a, o*100+a*10+m, 0x200+o, a, m+2, st))
			}
		}
		for p := range o {
			peers = append(peers, fmt.Sprintf(`{"org":"org%d","name":"peer%d","ip":"fdaa:0:%x:ff::%x","region":"ams"}`, o, p, 0x200+o, p+2))
		}
	}
	j := func(s []string) string { return "[" + strings.Join(s, ",") + "]" }
	return []byte(fmt.Sprintf(`{"orgs":%s,"apps":%s,"machines":%s,"peers":%s}`, j(orgs), j(apps), j(machines), j(peers)))
}

// artefactDir is where tests keep files for people to look at after the
// run: $MESHDNS_TEST_ARTEFACTS, else meshdns-artefacts in the temp dir.
func artefactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MESHDNS_TEST_ARTEFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "meshdns-artefacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStatusPage runs meshdns on a registry loaded with meshctl, plus two
// invalid values, and reads its status page as HTML, as JSON, with meshctl
// status and through headless Chromium: every count equals the registry's.
func TestStatusPage(t *testing.T) {
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Args("--http", h))
	ep := m.EtcdEndpoint()
	doc := filepath.Join(t.TempDir(), "registry.json")
	if err := os.WriteFile(doc, statusDoc(), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.MustMeshctl(t, ep, "load", doc)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, kv := range [][2]string{
		{"machines/org1/app0/0bad", `{"region":"ams","ip":"not-an-ip","state":"started"}`},
		{"peers/org2/broken", `{"ip":"fdaa:0:999::2"}`},
	} {
		if _, err := cli.Put(ctx, registry.DefaultPrefix+kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	etcdRev := resp.Header.Revision

	// Some queries, so the rcode counts have something to show.
	const queries = 5
	for range queries {
		harness.Query(t, m.Addr(), "app0.org0.internal.", dns.TypeAAAA, harness.QueryOptions{})
	}

	var d metrics.StatusData
	harness.Poll(t, 10*time.Second, 50*time.Millisecond, "status page at etcd's revision", func() (bool, string) {
		code, body, err := get(h, "/?format=json")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatalf("JSON form does not parse: %v\n%s", err, body)
		}
		return d.Etcd.Revision >= etcdRev, fmt.Sprintf("revision %d, want %d", d.Etcd.Revision, etcdRev)
	})
	if d.Registry != statusWant {
		t.Errorf("JSON counts %+v, want the registry's %+v", d.Registry, statusWant)
	}
	if !d.Ready || !d.Etcd.Connected || d.OrgsTotal != statusOrgs || len(d.Orgs) != statusOrgs || len(d.Invalid) != 2 {
		t.Errorf("ready %v, etcd %+v, %d orgs (%d rows), invalid %+v", d.Ready, d.Etcd, d.OrgsTotal, len(d.Orgs), d.Invalid)
	}
	for i, o := range d.Orgs {
		want := metrics.OrgRow{Name: fmt.Sprintf("org%d", i), Network: fmt.Sprintf("fdaa:0:%x::/48", 0x200+i), Apps: i + 1, Machines: 3 * (i + 1), Started: 2 * (i + 1), Peers: i, Serial: o.Serial}
		if o != want || o.Serial == 0 {
			t.Errorf("org row %+v, want %+v with a serial", o, want)
		}
	}
	var total float64
	for _, v := range d.Queries.Totals {
		total += v
	}
	if total < queries {
		t.Errorf("queries by rcode %v: %v in all, want at least %d", d.Queries.Totals, total, queries)
	}
	if d.Propagation.Count == 0 {
		t.Errorf("no write→visible delay measured after loading %d entries", statusWant.Orgs+statusWant.Apps+24)
	}

	// The HTML page shows the same counts.
	code, page, err := get(h, "/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /: %d %v", code, err)
	}
	checkCounts(t, "HTML page", page)

	// meshctl status, as text and as JSON.
	out := harness.MustMeshctl(t, ep, "status", "--server", h)
	wantLine := fmt.Sprintf("%d orgs, %d apps, %d machines started of %d deployed, %d peers, %d invalid values",
		statusWant.Orgs, statusWant.Apps, statusWant.MachinesStarted, statusWant.MachinesDeployed, statusWant.Peers, statusWant.Invalid)
	for _, want := range []string{"READY", wantLine, "machines/org1/app0/0bad", "org2  fdaa:0:202::/48"} {
		if !strings.Contains(out, want) {
			t.Errorf("meshctl status lacks %q:\n%s", want, out)
		}
	}
	var dj metrics.StatusData
	if err := json.Unmarshal([]byte(harness.MustMeshctl(t, ep, "status", "--server", h, "-o", "json")), &dj); err != nil || dj.Registry != statusWant {
		t.Errorf("meshctl status -o json: %v, counts %+v", err, dj.Registry)
	}
	if _, stderr, code := harness.Meshctl(t, ep, "status", "--server", "127.0.0.1:1"); code == 0 || !strings.Contains(stderr, "is meshdns running") {
		t.Errorf("meshctl status of nothing: exit %d, %q", code, stderr)
	}

	// Headless Chromium: the page renders without console errors, and its
	// DOM holds the counts.
	dom := chromium(t, "--dump-dom", "http://"+h+"/")
	checkCounts(t, "page rendered by Chromium", dom)
	shot := filepath.Join(artefactDir(t), "status-page.png")
	chromium(t, "--screenshot="+shot, "--window-size=1280,2000", "http://"+h+"/")
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	t.Logf("status page screenshot (artefact): %s", shot)
}

// checkCounts finds each count of the registry in the page's table.
func checkCounts(t *testing.T, what, page string) {
	t.Helper()
	for id, want := range map[string]int{
		"orgs": statusWant.Orgs, "apps": statusWant.Apps, "machines-started": statusWant.MachinesStarted,
		"machines-deployed": statusWant.MachinesDeployed, "peers": statusWant.Peers, "invalid": statusWant.Invalid,
	} {
		re := regexp.MustCompile(fmt.Sprintf(`id="%s">(?:<span[^>]*>)?(\d+)<`, id))
		m := re.FindStringSubmatch(page)
		if m == nil || m[1] != fmt.Sprint(want) {
			t.Errorf("%s: %s is %v, want %d", what, id, m, want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Errorf("%s has a script", what)
	}
}

// consoleLine is how Chromium's --enable-logging=stderr reports a page's
// console messages and uncaught exceptions.
var consoleLine = regexp.MustCompile(`(?m)^.*(:CONSOLE[:(]|Uncaught).*$`)

// chromium runs headless Chromium with args and returns its stdout; any
// console message or uncaught error from the page fails the test.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin := etcdtest.RequireTool(t, "chromium")
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	if lines := consoleLine.FindAllString(stderr.String(), -1); len(lines) > 0 {
		t.Errorf("chromium %v: the page logged to the console:\n%s", args, strings.Join(lines, "\n"))
	}
	return stdout.String()
}

// TestChromiumConsoleCheck makes sure the console check above sees errors:
// a page that logs and throws must be caught.
func TestChromiumConsoleCheck(t *testing.T) {
	bin := etcdtest.RequireTool(t, "chromium")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0", "--dump-dom",
		`data:text/html,<script>console.error("probe");throw new Error("boom")</script>`)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if n := len(consoleLine.FindAllString(stderr.String(), -1)); n < 2 {
		t.Errorf("console check found %d lines, want the error and the uncaught exception:\n%s", n, stderr.String())
	}
}
