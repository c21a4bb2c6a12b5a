package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMachineTTL checks that --ttl attaches the machine to a fresh lease
// whose id is printed, that a state change keeps the lease, and that the
// machine is gone once the lease expires (nobody keeps it alive).
func TestMachineTTL(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, nil)
	r.seed()
	const path = "machines/acme/web/abc123"
	out := r.mustRun("machine", "put", "abc123", "--org", "acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18::9", "--ttl", "2s")
	lease, err := strconv.ParseInt(strings.TrimSpace(out), 16, 64)
	if err != nil || len(out) != 17 {
		t.Fatalf("stdout %q, want a lease id as 16 hex digits and a newline", out)
	}
	if got := r.leaseOf(path); got != lease {
		t.Fatalf("%s has lease %x, want the printed lease %x", path, got, lease)
	}
	ttl, err := r.cli.TimeToLive(context.Background(), clientv3.LeaseID(lease))
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 2 {
		t.Errorf("lease granted for %ds, want 2s", ttl.GrantedTTL)
	}

	r.mustRun("machine", "state", "abc123", "stopped", "--org", "acme", "--app", "web")
	if got := r.leaseOf(path); got != lease {
		t.Fatalf("after a state change %s has lease %x, want %x", path, got, lease)
	}

	deadline := time.Now().Add(15 * time.Second)
	for r.decode(path) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s still there 15s after its 2s lease was granted", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.decode("machines/acme/web/3d8d9e0b2ee489") == nil {
		t.Error("the machine without a lease went away too")
	}
}

// leaseOf returns the lease a key is attached to (0 for none or a missing key).
func (r *testRegistry) leaseOf(path string) int64 {
	r.t.Helper()
	resp, err := r.cli.Get(context.Background(), r.prefix+path)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Lease
}
