package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// hungCatchUpMax bounds how long meshdns may take to notice that the member
// under its watch hung and to catch up through another: the watch goes
// quiet for its stall timeout (15 s: three missed progress notifications),
// the check of etcd's revision may itself wait 5 s on the hung member, and
// the next watch may land on it once more.
const hungCatchUpMax = 60 * time.Second

// TestHungMember freezes (SIGSTOP) the etcd member that carries meshdns's
// watch, in a three-member cluster. The member keeps its connections open
// and says nothing, which no connection error or require-leader reveals
// (etcd #8980, #12534, #17611). Writes go on through the other two members.
// meshdns must keep answering every query, notice that its watch makes no
// progress while etcd's revision moves on, and catch up through a healthy
// member.
func TestHungMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.Cluster(t, 3)
	cli := c.Client(t)
	seed(t, cli, []string{"keep", "pub"}, []*registry.Machine{
		machineItem("keep", "c0a1", "ams", ip(0xc, 1)),
		machineItem("keep", "c0a2", "fra", ip(0xc, 2)),
	})
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(c.Endpoints()...), args())
	steady := []probe{
		{name: "keep.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xc, 1).String(), ip(0xc, 2).String())},
		{name: "c0a1.vm.keep.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xc, 1).String())},
	}
	waitMatch(t, "the registry served", 10*time.Second, steady, m.Addr())

	// The member holding meshdns's watch is the one etcd counts a watcher
	// on (nothing else here watches).
	hung := -1
	harness.Poll(t, 10*time.Second, 50*time.Millisecond, "the member with meshdns's watch", func() (bool, string) {
		var counts []string
		for i := range 3 {
			n := watchers(c.Member(i).ClientURL)
			counts = append(counts, fmt.Sprintf("m%d: %d", i, n))
			if n > 0 {
				hung = i
			}
		}
		return hung >= 0, strings.Join(counts, ", ")
	})
	leader := c.Leader(t)
	var others []string
	for i := range 3 {
		if i != hung {
			others = append(others, c.Member(i).ClientURL)
		}
	}
	ow := registry.NewWriter(newClient(t, others...), prefix)
	before := metrics(t, m.HTTPAddr())

	q := startQuerier(t, m.Addr(), 5*time.Millisecond, time.Second, steady...)
	c.Member(hung).Pause()
	frozen := time.Now()
	mc := registry.Machine{Org: orgName, App: "pub", ID: "d001", Region: "syd", IP: ip(0xd, 1), State: registry.StateStarted}
	attempts, err := retry(func(ctx context.Context) error { return ow.PutMachine(ctx, mc) })
	if err != nil {
		t.Fatalf("write through the other members: %v", err)
	}
	wrote := time.Since(frozen)
	took := waitMatch(t, "the write made while the member under the watch hung", hungCatchUpMax,
		[]probe{{name: "d001.vm.pub.internal", qtype: dns.TypeAAAA, want: wantAAAA(ip(0xd, 1).String())}}, m.Addr())
	after := metrics(t, m.HTTPAddr())
	role := "a follower"
	if hung == leader {
		role = "the leader"
	}
	t.Logf("m%d (%s) frozen under meshdns's watch; a write through the others took %v (%d attempts); meshdns served it %v after the freeze; watch restarts %v → %v, full loads %v → %v",
		hung, role, wrote.Round(time.Millisecond), attempts, (wrote + took).Round(time.Millisecond),
		before["meshdns_registry_watch_restarts_total"], after["meshdns_registry_watch_restarts_total"],
		before["meshdns_registry_loads_total"], after["meshdns_registry_loads_total"])
	for _, e := range logsWith(m, "failed; answering from the last snapshot") {
		t.Logf("meshdns logged: %s: %s", e.Msg(), e.Str("error"))
	}
	requireNoFailures(t, "queries while a member hung", q.Stop())
	c.Member(hung).Resume()
}

// watchers is etcd's count of watchers on the member at url (-1 when it
// cannot be read).
func watchers(url string) int {
	code, body, err := httpGet(strings.TrimPrefix(url, "http://"), "/metrics")
	if err != nil || code != 200 {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "etcd_debugging_mvcc_watcher_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}
