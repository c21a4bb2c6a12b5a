package main

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

// TestWrites runs each writing verb on a seeded registry and reads back
// exactly what it stored: the values it should have written (with
// updated_at stamped by the command), the keys it should have removed, and
// no change to any other key.
func TestWrites(t *testing.T) {
	t.Parallel()
	e := etcdtest.Embedded(t)
	addr := netip.MustParseAddr
	withState := func(state string) *registry.Machine {
		m := seedMachine()
		m.State, m.UpdatedAt = state, time.Time{}
		return &m
	}
	tests := []struct {
		name string
		args []string
		// want maps paths below the prefix to the value expected there
		// (updated_at cleared), or to nil for a key that must be gone.
		want map[string]any
	}{
		{
			name: "org put",
			args: []string{"org", "put", "initech", "--network", "fdaa:0:20::/48"},
			want: map[string]any{"orgs/initech": &registry.OrgValue{Name: "initech", Network: netip.MustParsePrefix("fdaa:0:20::/48")}},
		},
		{
			name: "org put changes the network",
			args: []string{"org", "put", "globex", "--network", "fdaa:0:20::/48"},
			want: map[string]any{"orgs/globex": &registry.OrgValue{Name: "globex", Network: netip.MustParsePrefix("fdaa:0:20::/48")}},
		},
		{
			name: "org rm removes the org with its apps, machines and peers",
			args: []string{"org", "rm", "acme"},
			want: map[string]any{"orgs/acme": nil, "apps/acme/web": nil, "machines/acme/web/3d8d9e0b2ee489": nil, "peers/acme/laptop": nil},
		},
		{
			name: "app put",
			args: []string{"app", "put", "api", "--org", "acme", "--flycast", "fdaa:0:18:0:1::6"},
			want: map[string]any{"apps/acme/api": &registry.AppValue{Org: "acme", Name: "api", Flycast: addr("fdaa:0:18:0:1::6")}},
		},
		{
			name: "app put without flycast replaces the value",
			args: []string{"app", "put", "web", "--org", "acme"},
			want: map[string]any{"apps/acme/web": &registry.AppValue{Org: "acme", Name: "web"}},
		},
		{
			name: "app rm keeps the machines",
			args: []string{"app", "rm", "web", "--org", "acme"},
			want: map[string]any{"apps/acme/web": nil},
		},
		{
			name: "machine put with defaults",
			args: []string{"machine", "put", "abc123", "--org", "acme", "--app", "web", "--region", "iad", "--ip", "fdaa:0:18:a7b:1::3"},
			want: map[string]any{"machines/acme/web/abc123": &registry.Machine{
				Org: "acme", App: "web", ID: "abc123", Region: "iad", IP: addr("fdaa:0:18:a7b:1::3"),
				State: "started", ProcessGroup: "app",
			}},
		},
		{
			name: "machine put with every flag",
			args: []string{"machine", "put", "abc124", "--org", "acme", "--app", "db", "--region", "ord", "--ip", "fdaa:0:18:a7b:2::2",
				"--state", "stopped", "--process-group", "worker", "--metadata", "role=replica", "--metadata", "zone=b", "--skip-registration"},
			want: map[string]any{"machines/acme/db/abc124": &registry.Machine{
				Org: "acme", App: "db", ID: "abc124", Region: "ord", IP: addr("fdaa:0:18:a7b:2::2"),
				State: "stopped", ProcessGroup: "worker", Metadata: map[string]string{"role": "replica", "zone": "b"}, SkipRegistration: true,
			}},
		},
		{
			name: "machine put replaces the whole value",
			args: []string{"machine", "put", "3d8d9e0b2ee489", "--org", "acme", "--app", "web", "--region", "lhr", "--ip", "fdaa:0:18:a7b:1::2"},
			want: map[string]any{"machines/acme/web/3d8d9e0b2ee489": &registry.Machine{
				Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "lhr", IP: addr("fdaa:0:18:a7b:1::2"),
				State: "started", ProcessGroup: "app",
			}},
		},
		{
			name: "machine state keeps the rest",
			args: []string{"machine", "state", "3d8d9e0b2ee489", "stopped", "--org", "acme", "--app", "web"},
			want: map[string]any{"machines/acme/web/3d8d9e0b2ee489": withState("stopped")},
		},
		{
			name: "machine put with services",
			args: []string{"machine", "put", "abc125", "--org", "acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18:a7b:1::5",
				"--service", "http/tcp/8080", "--service", "dns/udp/53"},
			want: map[string]any{"machines/acme/web/abc125": &registry.Machine{
				Org: "acme", App: "web", ID: "abc125", Region: "ams", IP: addr("fdaa:0:18:a7b:1::5"),
				State: "started", ProcessGroup: "app",
				Services: []registry.Service{{Name: "http", Protocol: "tcp", Port: 8080}, {Name: "dns", Protocol: "udp", Port: 53}},
			}},
		},
		{
			name: "machine check keeps the rest",
			args: []string{"machine", "check", "3d8d9e0b2ee489", "http", "critical", "--org", "acme", "--app", "web"},
			want: map[string]any{"machines/acme/web/3d8d9e0b2ee489": func() *registry.Machine {
				m := withState("started")
				m.Checks = map[string]string{"http": "critical"}
				return m
			}()},
		},
		{
			name: "machine rm",
			args: []string{"machine", "rm", "3d8d9e0b2ee489", "--org", "acme", "--app", "web"},
			want: map[string]any{"machines/acme/web/3d8d9e0b2ee489": nil},
		},
		{
			name: "peer put",
			args: []string{"peer", "put", "ci-runner", "--org", "acme", "--ip", "fdaa:0:18:a7b:9::3", "--region", "fra", "--public-key", peerKey},
			want: map[string]any{"peers/acme/ci-runner": &registry.Peer{Org: "acme", Name: "ci-runner", IP: addr("fdaa:0:18:a7b:9::3"), Region: "fra", PublicKey: peerKey}},
		},
		{
			name: "peer put with only the address",
			args: []string{"peer", "put", "laptop", "--org", "acme", "--ip", "fdaa:0:18:a7b:9::4"},
			want: map[string]any{"peers/acme/laptop": &registry.Peer{Org: "acme", Name: "laptop", IP: addr("fdaa:0:18:a7b:9::4")}},
		},
		{
			name: "peer rm",
			args: []string{"peer", "rm", "laptop", "--org", "acme"},
			want: map[string]any{"peers/acme/laptop": nil},
		},
		{
			name: "gateway put",
			args: []string{"gateway", "put", "iad", "--endpoint", "[2001:db8::7]:51820", "--public-key", gatewayKey},
			want: map[string]any{"gateways/iad": &registry.Gateway{Region: "iad", Endpoint: "[2001:db8::7]:51820", PublicKey: gatewayKey}},
		},
		{
			name: "gateway rm",
			args: []string{"gateway", "rm", "ams"},
			want: map[string]any{"gateways/ams": nil},
		},
		{
			name: "region put",
			args: []string{"region", "put", "ams", "--lat", "52.31", "--lon", "4.77", "--name", "Amsterdam"},
			want: map[string]any{"regions/ams": &registry.Region{Code: "ams", Name: "Amsterdam", Lat: 52.31, Lon: 4.77}},
		},
		{
			name: "region put at 0,0 without a name",
			args: []string{"region", "put", "nul", "--lat", "0", "--lon", "0"},
			want: map[string]any{"regions/nul": &registry.Region{Code: "nul"}},
		},
		{
			name: "region rm",
			args: []string{"region", "rm", "xyz"},
			want: map[string]any{"regions/xyz": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newTestRegistry(t, e)
			r.seed()
			before := r.dump()
			start := time.Now()
			if out := r.mustRun(tt.args...); out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			end := time.Now()
			checkStored(t, r, before, tt.want, start, end)
		})
	}
}

// checkStored checks that the registry holds want (see TestWrites), with
// updated_at of each written value between start and end, and that every
// other key is as in before.
func checkStored(t *testing.T, r *testRegistry, before map[string]string, want map[string]any, start, end time.Time) {
	t.Helper()
	for path, w := range want {
		got := r.decode(path)
		switch {
		case w == nil && got != nil:
			t.Errorf("%s still holds %+v, want it removed", path, got)
		case w != nil && got == nil:
			t.Errorf("%s missing, want %+v", path, w)
		case w != nil:
			at, got := takeUpdatedAt(got)
			if at.Before(start) || at.After(end) {
				t.Errorf("%s: updated_at %v, want it stamped by the command (between %v and %v)", path, at, start.UTC(), end.UTC())
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s:\n got %+v\nwant %+v", path, got, w)
			}
		}
	}
	after := r.dump()
	for path, v := range before {
		if _, expected := want[path]; !expected && after[path] != v {
			t.Errorf("%s changed from %s to %q", path, v, after[path])
		}
	}
	for path, v := range after {
		if _, expected := want[path]; !expected && before[path] == "" {
			t.Errorf("unexpected new key %s = %s", path, v)
		}
	}
}
