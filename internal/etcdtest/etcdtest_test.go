package etcdtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

func TestEmbedded(t *testing.T) {
	e := etcdtest.Embedded(t)
	eps := e.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("Endpoints() = %v, want one http://127.0.0.1:PORT", eps)
	}
	cli := e.Client(t)
	put(t, cli, "k", "v")
	if got := get(t, cli, "k"); got != "v" {
		t.Fatalf("get k = %q, want v", got)
	}

	// Tests simulate an etcd outage by closing early; cleanup closes again.
	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(ctx, "k"); err == nil {
		t.Fatal("get after Close succeeded")
	}
}

func TestCluster(t *testing.T) {
	c := etcdtest.Cluster(t, 3)
	if eps := c.Endpoints(); len(eps) != 3 {
		t.Fatalf("Endpoints() = %v, want 3", eps)
	}
	cli := c.Client(t)
	put(t, cli, "before", "1")

	old := c.Leader(t)
	c.Member(old).Kill()
	survivor := c.Member((old + 1) % 3)
	// The put waits out the election that the crash triggers.
	put(t, survivor.Client(t), "during", "2")
	if l := c.Leader(t); l == old {
		t.Fatalf("leader is still the killed member %d", l)
	}

	// Start returns once the member serves linearizable reads, i.e. has
	// caught up, so its local (serializable) copy must already have the key
	// written while it was down.
	c.Member(old).Start()
	if got := get(t, c.Member(old).Client(t), "during", clientv3.WithSerializable()); got != "2" {
		t.Fatalf("restarted member has during=%q, want 2", got)
	}

	// A paused follower must not block writes.
	follower := c.Member((c.Leader(t) + 1) % 3)
	follower.Pause()
	put(t, cli, "paused", "3")
	follower.Resume()

	// Losing quorum and recovering with StartAll keeps the data.
	c.Member(0).Stop()
	c.Member(1).Stop()
	c.StartAll()
	if got := get(t, cli, "paused"); got != "3" {
		t.Fatalf("after StartAll paused=%q, want 3", got)
	}
}

func TestRequireTool(t *testing.T) {
	if p := etcdtest.RequireTool(t, "go"); p == "" {
		t.Fatal("RequireTool(go) returned an empty path")
	}
	const missing = "etcdtest-no-such-tool"

	t.Setenv("CI", "")
	if r := runTB(func(tb testing.TB) { etcdtest.RequireTool(tb, missing) }); !strings.Contains(r.skip, "scripts/test.sh") || r.fatal != "" {
		t.Errorf("without CI: skip=%q fatal=%q, want a skip mentioning scripts/test.sh", r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	if r := runTB(func(tb testing.TB) { etcdtest.RequireTool(tb, missing) }); !strings.Contains(r.fatal, "scripts/test.sh") || r.skip != "" {
		t.Errorf("with CI=true: skip=%q fatal=%q, want a fatal mentioning scripts/test.sh", r.skip, r.fatal)
	}
}

func TestFreePorts(t *testing.T) {
	ports := etcdtest.FreePorts(t, 20)
	seen := make(map[int]bool)
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("bad or duplicate port %d in %v", p, ports)
		}
		seen[p] = true
	}
}

// recordingTB captures Skip and Fatal calls so the CI-dependent behaviour of
// RequireTool can be checked without failing or skipping this test.
type recordingTB struct {
	testing.TB
	skip, fatal string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runTB runs f in its own goroutine, as testing does, because Skipf and
// Fatalf end the goroutine.
func runTB(f func(testing.TB)) *recordingTB {
	r := &recordingTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// put retries until the cluster accepts the write, because a put issued
// during an election fails fast with "leader changed" or "no leader".
func put(t *testing.T, cli *clientv3.Client, k, v string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(ctx, k, v)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", k, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, cli *clientv3.Client, k string, opts ...clientv3.OpOption) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, k, opts...)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// TestGRPCProxy: reads and writes go through the proxy to the cluster;
// stopped, it answers nothing; started again, it serves on the same
// endpoint.
func TestGRPCProxy(t *testing.T) {
	bin := etcdtest.EtcdBinary(t)
	c := etcdtest.ClusterOf(t, 1, bin)
	p := etcdtest.StartGRPCProxy(t, bin, c.Endpoints())
	if !strings.HasPrefix(p.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("Endpoint = %q", p.Endpoint)
	}
	cli := p.Client(t)
	put(t, cli, "k", "v")
	if got := get(t, c.Client(t), "k"); got != "v" {
		t.Fatalf("the cluster holds k = %q after a put through the proxy, want v", got)
	}
	p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(ctx, "k"); err == nil {
		t.Fatal("get through a stopped proxy succeeded")
	}
	p.Start()
	if got := get(t, cli, "k"); got != "v" {
		t.Fatalf("get k through the restarted proxy = %q, want v", got)
	}
	if v := etcdtest.Version(t, bin); !strings.HasPrefix(v, "3.") {
		t.Errorf("Version = %q", v)
	}
}
