package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestList runs every list verb, as table and as JSON, over a registry with
// valid and broken entries, and compares the output with
// testdata/list.golden (go test -run TestList -update rewrites it).
func TestList(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, nil)
	r.seed()
	ctx := context.Background()
	m := registry.Machine{Org: "globex", App: "web", ID: "eeee05", Region: "iad", IP: netip.MustParseAddr("fdaa:0:19::5"),
		State: registry.StateStopped, UpdatedAt: seedTime}
	if err := r.w.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	m = registry.Machine{Org: "acme", App: "api", ID: "ffff06", Region: "ord", IP: netip.MustParseAddr("fdaa:0:18::6"),
		State: registry.StateStarted, ProcessGroup: "worker", UpdatedAt: seedTime}
	if err := r.w.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Entries the Writer would refuse, as another writer might leave them.
	for path, value := range map[string]string{
		"machines/acme/web/bbbb02":   `{"region":"ams","ip":"fdaa:0:18::2","state":"runing"}`,
		"machines/acme/Web/cccc03":   `{"region":"ams","ip":"fdaa:0:18::3","state":"started"}`,
		"machines/acme-2/api/dddd04": `{"region":"ams","ip":"fdaa:0:1a::4","state":"started"}`, // sorts after acme, unlike its key
		"orgs/broken":                `not json`,
		"apps/acme/old":              `{"flycast":"10.0.0.1"}`,
		"regions/vms":                `{"lat":1,"lon":2}`,
	} {
		if _, err := r.cli.Put(ctx, r.prefix+path, value); err != nil {
			t.Fatal(err)
		}
	}

	var got strings.Builder
	for _, cmd := range []string{
		"org list",
		"org list -o json",
		"app list",
		"app list --org globex",
		"app list -o json",
		"machine list",
		"machine list --org acme --app web",
		"machine list --app web",
		"machine list --org globex -o json",
		"machine list -o json",
		"peer list",
		"peer list --org globex",
		"peer list -o json",
		"gateway list",
		"gateway list -o json",
		"region list",
		"region list -o json",
	} {
		res := r.run(strings.Fields(cmd)...)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("meshctl %s: exit %d, stderr %q", cmd, res.code, res.stderr)
		}
		fmt.Fprintf(&got, "$ meshctl %s\n%s\n", cmd, res.stdout)
	}

	golden := filepath.Join("testdata", "list.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestList -update to create it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("list output differs from %s (run with -update and review the diff):\n%s", golden, got.String())
	}
}
