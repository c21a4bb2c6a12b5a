package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// prefix is meshdns's default registry prefix (SPEC §3).
const prefix = "/meshdns/v1/"

// acmeNet is the network of org acme in the registry tests.
var acmeNet = netip.MustParsePrefix("fdaa:0:18::/48")

// TestRegistry runs meshdns against a real etcd server process (issue
// "Registry in etcd"): writes through meshctl reach DNS, values that break
// the rules are skipped and logged while their neighbours are served,
// leases expire machines out of DNS, and changes that happened while
// meshdns was frozen and were then compacted away in etcd are all caught up.
func TestRegistry(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Cluster(t, 1)
	ep := cluster.Endpoints()[0]
	cli := cluster.Client(t)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--default-org", "acme", "--region", "ams"))

	t.Run("meshctl writes reach DNS", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "org", "put", "acme", "--network", acmeNet.String())
		harness.MustMeshctl(t, ep, "app", "put", "web", "--org", "acme")
		for _, mc := range []struct{ id, region, ip string }{
			{"aa01", "ams", "fdaa:0:18:1::1"},
			{"bb02", "fra", "fdaa:0:18:1::2"},
			{"cc03", "iad", "fdaa:0:18:1::3"},
		} {
			harness.MustMeshctl(t, ep, "machine", "put", mc.id, "--org", "acme", "--app", "web", "--region", mc.region, "--ip", mc.ip)
		}
		digUntil(t, m, 5*time.Second, "three machines of web", func(r *digtest.Result) bool {
			return len(r.Answer) == 3
		}, "aaaa", "web.internal")
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal",
			noerror(one("fdaa:0:18:1::1"), one("fdaa:0:18:1::2"), one("fdaa:0:18:1::3")))
		checkResponse(t, m.Dig(t, "txt", "vms.web.internal"), "vms.web.internal", txt("aa01 ams,bb02 fra,cc03 iad"))
	})

	// Values that break the rules, written straight into etcd.
	bad := map[string]string{
		"machines/acme/web/bad1": `{"region":"ams","ip":"fdaa:0:18:1::b1","state":"started"`,  // broken JSON
		"machines/acme/web/bad2": `{"region":"ams","ip":"fdaa:0:99:1::b2","state":"started"}`, // outside acme's network
		"machines/acme/web/cc03": `{"region":"iad","ip":"fdaa:0:18:1::3","state":"exploded"}`, // was valid; unknown state
	}
	checkSkipped := func(t *testing.T, m *harness.Meshdns) {
		t.Helper()
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal",
			noerror(one("fdaa:0:18:1::1"), one("fdaa:0:18:1::2"), one("fdaa:0:18:1::4")))
		checkResponse(t, m.Dig(t, "txt", "vms.web.internal"), "vms.web.internal", txt("aa01 ams,bb02 fra,dd04 syd"))
		for _, id := range []string{"bad1", "bad2", "cc03"} {
			name := id + ".vm.web.internal"
			checkResponse(t, m.Dig(t, "aaaa", name), name, nxdomain)
		}
		for key := range bad {
			e := m.WaitLog(5*time.Second, "registry value skipped for "+key, func(e harness.LogEntry) bool {
				return e.Msg() == "registry value skipped" && (e.Str("key") == prefix+key || e.Str("key") == key)
			})
			t.Logf("logged: key %s reason %q", e.Str("key"), e.Str("reason"))
		}
	}
	t.Run("invalid values are skipped, neighbours served", func(t *testing.T) {
		for key, val := range bad {
			put(t, cli, prefix+key, val)
		}
		// A valid neighbour written after them: once it is served, the
		// invalid values have been seen too (the watch applies in order).
		put(t, cli, prefix+"machines/acme/web/dd04", `{"region":"syd","ip":"fdaa:0:18:1::4","state":"started"}`)
		digUntil(t, m, 5*time.Second, "dd04.vm.web.internal", func(r *digtest.Result) bool {
			return len(r.Answer) == 1
		}, "aaaa", "dd04.vm.web.internal")
		checkSkipped(t, m)
	})
	t.Run("invalid values are skipped at load too", func(t *testing.T) {
		// A second server loads the same registry in full.
		m2 := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--default-org", "acme", "--region", "ams"))
		checkSkipped(t, m2)
	})
	for key := range bad {
		if _, err := cli.Delete(context.Background(), prefix+key); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a machine on a lease leaves DNS when the lease expires", func(t *testing.T) {
		put := time.Now()
		out := harness.MustMeshctl(t, ep, "machine", "put", "ee05", "--org", "acme", "--app", "web",
			"--region", "ams", "--ip", "fdaa:0:18:1::5", "--ttl", "2s")
		t.Logf("meshctl machine put --ttl 2s printed lease %s", strings.TrimSpace(out))
		digUntil(t, m, 2*time.Second, "ee05 in DNS", func(r *digtest.Result) bool {
			return len(r.Answer) == 1
		}, "aaaa", "ee05.vm.web.internal")
		digUntil(t, m, 10*time.Second, "ee05 gone after its lease expired", func(r *digtest.Result) bool {
			return r.Status == "NXDOMAIN"
		}, "aaaa", "ee05.vm.web.internal")
		t.Logf("ee05 with a 2 s lease left DNS %v after it was put", time.Since(put).Round(time.Millisecond))
		if time.Since(put) < 2*time.Second {
			t.Errorf("ee05 left DNS %v after it was put, before its 2 s lease could expire", time.Since(put))
		}
		checkResponse(t, m.Dig(t, "aaaa", "ee05.vm.web.internal"), "ee05.vm.web.internal", nxdomain)
	})

	// changes makes a round of changes through meshctl: a new machine, a
	// state change, a deletion, a new app.
	changes := func(t *testing.T, round int) (changed []string) {
		t.Helper()
		newID := fmt.Sprintf("f%d", round)
		harness.MustMeshctl(t, ep, "machine", "put", newID, "--org", "acme", "--app", "web", "--region", "ams", "--ip", fmt.Sprintf("fdaa:0:18:2::%d", round))
		state := "stopped"
		if round%2 == 0 {
			state = "started"
		}
		harness.MustMeshctl(t, ep, "machine", "state", "aa01", state, "--org", "acme", "--app", "web")
		gone := []string{"bb02", "dd04"}[round-1]
		harness.MustMeshctl(t, ep, "machine", "rm", gone, "--org", "acme", "--app", "web")
		appName := fmt.Sprintf("api%d", round)
		harness.MustMeshctl(t, ep, "machine", "put", "a"+newID, "--org", "acme", "--app", appName, "--region", "fra", "--ip", fmt.Sprintf("fdaa:0:18:3::%d", round))
		return []string{"web/" + newID, "web/aa01", "web/" + gone, appName + "/a" + newID}
	}
	compact := func(t *testing.T) int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "compaction-probe")
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Header.Revision
		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			t.Fatalf("compact at %d: %v", rev, err)
		}
		return rev
	}

	t.Run("frozen meshdns catches up after a compaction", func(t *testing.T) {
		m.Pause()
		changed := changes(t, 1)
		rev := compact(t)
		m.Resume()
		took := waitMatchesEtcd(t, m, cli, changed, 5*time.Second)
		t.Logf("SIGCONT after changes compacted at revision %d: answers match etcd after %v", rev, took.Round(time.Millisecond))
		for _, e := range m.Logs() {
			if strings.Contains(e.Msg(), "compacted") {
				t.Logf("(meshdns reloaded: %s)", e.Msg())
			}
		}
	})

	t.Run("frozen meshdns whose watch broke resumes past a compaction", func(t *testing.T) {
		// As above, but etcd crashes and restarts while meshdns is frozen, so the
		// changes are made after meshdns's watch stream is gone: meshdns
		// must resume from a compacted revision, which takes a full reload
		// (LESSONS: never "revision + 1").
		reloads := func() int {
			n := 0
			for _, e := range m.Logs() {
				if strings.Contains(e.Msg(), "compacted") {
					n++
				}
			}
			return n
		}
		before := reloads()
		m.Pause()
		// Killed rather than stopped: a graceful stop waits for the frozen
		// meshdns's watch stream to close, which it never does.
		restart := time.Now()
		cluster.Member(0).Kill()
		cluster.Member(0).Start()
		t.Logf("etcd killed and restarted in %v", time.Since(restart).Round(time.Millisecond))
		changed := changes(t, 2)
		rev := compact(t)
		m.Resume()
		// The catch-up notices the broken stream, meets the compaction and
		// loads in full (the harness gives --load-jitter 0s); 12 s leaves a
		// busy machine room for all three.
		took := waitMatchesEtcd(t, m, cli, changed, 12*time.Second)
		t.Logf("SIGCONT after an etcd restart and changes compacted at revision %d: answers match etcd after %v", rev, took.Round(time.Millisecond))
		// The catch-up went through the compaction path, not around it.
		harness.Poll(t, 5*time.Second, 20*time.Millisecond, "meshdns logs that its watch revision was compacted", func() (bool, string) {
			return reloads() > before, fmt.Sprintf("%d such entries before, %d now", before, reloads())
		})
		// The watch works again afterwards.
		harness.MustMeshctl(t, ep, "machine", "put", "ab99", "--org", "acme", "--app", "web", "--region", "lhr", "--ip", "fdaa:0:18:9::9")
		digUntil(t, m, 2*time.Second, "ab99 after the reload", func(r *digtest.Result) bool {
			return len(r.Answer) == 1
		}, "aaaa", "ab99.vm.web.internal")
	})
}

func put(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// etcdMachine is a machine as etcd holds it, decoded by the test.
type etcdMachine struct {
	Region string `json:"region"`
	IP     string `json:"ip"`
	State  string `json:"state"`
}

// acmeMachines reads acme's machines from etcd, by app and id, leaving out
// values meshdns must skip (undecodable, or outside acme's network).
func acmeMachines(t *testing.T, cli *clientv3.Client) map[string]map[string]etcdMachine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix+"machines/acme/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]etcdMachine{}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix+"machines/acme/")
		appName, id, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		var mc etcdMachine
		if json.Unmarshal(kv.Value, &mc) != nil {
			continue
		}
		ip, err := netip.ParseAddr(mc.IP)
		if err != nil || !acmeNet.Contains(ip) || !slices.Contains(states, mc.State) {
			continue
		}
		if out[appName] == nil {
			out[appName] = map[string]etcdMachine{}
		}
		out[appName][id] = mc
	}
	return out
}

var states = []string{"created", "starting", "started", "stopping", "stopped", "suspending", "suspended", "replacing", "destroying", "destroyed", "failed"}

// waitMatchesEtcd polls until dig's answers for every changed "app/id"
// (its <id>.vm.<app>.internal AAAA) and for every app's vms and all.vms
// lists match what etcd holds, and returns how long that took.
func waitMatchesEtcd(t *testing.T, m *harness.Meshdns, cli *clientv3.Client, changed []string, timeout time.Duration) time.Duration {
	t.Helper()
	held := acmeMachines(t, cli)
	type check struct {
		args []string
		ok   func(*digtest.Result) bool
	}
	var checks []check
	for _, c := range changed {
		appName, id, _ := strings.Cut(c, "/")
		name := id + ".vm." + appName + ".internal"
		mc, ok := held[appName][id]
		switch {
		case !ok || mc.State == "destroyed":
			checks = append(checks, check{[]string{"aaaa", name}, func(r *digtest.Result) bool { return r.Status == "NXDOMAIN" }})
		case mc.State == "started":
			ip := netip.MustParseAddr(mc.IP).String()
			checks = append(checks, check{[]string{"aaaa", name}, func(r *digtest.Result) bool {
				return r.Status == "NOERROR" && slices.Equal(aaaaOf(r.Answer), []string{ip})
			}})
		default:
			checks = append(checks, check{[]string{"aaaa", name}, func(r *digtest.Result) bool { return r.Status == "NOERROR" && len(r.Answer) == 0 }})
		}
	}
	for appName, ms := range held {
		for _, all := range []bool{false, true} {
			var parts []string
			for id, mc := range ms {
				if mc.State == "started" || all && mc.State != "destroyed" {
					parts = append(parts, id+" "+mc.Region)
				}
			}
			sort.Strings(parts)
			text := strings.Join(parts, ",")
			name := "vms." + appName + ".internal"
			if all {
				name = "all." + name
			}
			checks = append(checks, check{[]string{"txt", name}, func(r *digtest.Result) bool {
				if r.Status != "NOERROR" || len(r.Answer) != 1 {
					return false
				}
				_, ok := r.Answer[0].(*dns.TXT)
				return ok && txtText(r) == text
			}})
		}
	}
	start := time.Now()
	for {
		var wrong []string
		for _, c := range checks {
			res := m.Dig(t, c.args...)
			if !c.ok(res) {
				wrong = append(wrong, fmt.Sprintf("dig %s:\n%s", strings.Join(c.args, " "), res.Raw))
			}
		}
		if len(wrong) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%d answers still differ from etcd after %v; etcd holds %v\n%s", len(wrong), timeout, held, strings.Join(wrong, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// txtText is the text of a result's first TXT answer, strings
// concatenated, or "" if there is none.
func txtText(r *digtest.Result) string {
	if len(r.Answer) == 0 {
		return ""
	}
	if tx, ok := r.Answer[0].(*dns.TXT); ok {
		return strings.Join(tx.Txt, "")
	}
	return ""
}
