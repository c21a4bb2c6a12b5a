package main

import (
	"bytes"
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testRegistry is a registry under its own prefix of an embedded etcd, so
// that tests sharing one etcd do not see each other's keys.
type testRegistry struct {
	t        *testing.T
	endpoint string
	prefix   string
	cli      *clientv3.Client
	w        *registry.Writer
}

var nonKeyChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// newTestRegistry returns an empty registry under a prefix named after the
// test, in e or, when e is nil, in a new embedded etcd.
func newTestRegistry(t *testing.T, e *etcdtest.EmbeddedEtcd) *testRegistry {
	t.Helper()
	if e == nil {
		e = etcdtest.Embedded(t)
	}
	cli := e.Client(t)
	prefix := "/test/" + nonKeyChars.ReplaceAllString(t.Name(), "_") + "/"
	return &testRegistry{t: t, endpoint: e.Endpoints()[0], prefix: prefix, cli: cli, w: registry.NewWriter(cli, prefix)}
}

// result is what one meshctl command line did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs meshctl in-process against the registry.
func (r *testRegistry) run(args ...string) result {
	r.t.Helper()
	return r.runStdin("", args...)
}

func (r *testRegistry) runStdin(stdin string, args ...string) result {
	r.t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--etcd-endpoints", r.endpoint, "--etcd-prefix", r.prefix}, args...)
	code := run(context.Background(), full, strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// mustRun runs a command that must succeed.
func (r *testRegistry) mustRun(args ...string) string {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 || res.stderr != "" {
		r.t.Fatalf("meshctl %s: exit %d, stderr %q", strings.Join(args, " "), res.code, res.stderr)
	}
	return res.stdout
}

// dump returns every key of the registry (below the prefix) with its raw
// value.
func (r *testRegistry) dump() map[string]string {
	r.t.Helper()
	resp, err := r.cli.Get(context.Background(), r.prefix, clientv3.WithPrefix())
	if err != nil {
		r.t.Fatal(err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[strings.TrimPrefix(string(kv.Key), r.prefix)] = string(kv.Value)
	}
	return m
}

// decode reads and decodes the value stored at path (below the prefix); it
// returns nil if the key does not exist.
func (r *testRegistry) decode(path string) any {
	r.t.Helper()
	resp, err := r.cli.Get(context.Background(), r.prefix+path)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	k, err := registry.ParseKey(r.prefix, r.prefix+path)
	if err != nil {
		r.t.Fatal(err)
	}
	v, err := registry.Decode(k, resp.Kvs[0].Value)
	if err != nil {
		r.t.Fatalf("%s holds %s: %v", path, resp.Kvs[0].Value, err)
	}
	return v
}

// seedTime is the updated_at of seeded values, so listings are stable.
var seedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Seeded WireGuard keys (32 bytes, base64).
const (
	peerKey    = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	gatewayKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
)

// seed writes a small valid registry through the Writer: orgs acme and
// globex, acme's app web with one machine and a peer, a gateway and a region.
func (r *testRegistry) seed() {
	r.t.Helper()
	ctx := context.Background()
	mustPut := func(err error) {
		r.t.Helper()
		if err != nil {
			r.t.Fatal(err)
		}
	}
	mustPut(r.w.PutOrg(ctx, registry.OrgValue{Name: "acme", Network: netip.MustParsePrefix("fdaa:0:18::/48"), UpdatedAt: seedTime}))
	mustPut(r.w.PutOrg(ctx, registry.OrgValue{Name: "globex", Network: netip.MustParsePrefix("fdaa:0:19::/48"), UpdatedAt: seedTime}))
	mustPut(r.w.PutApp(ctx, registry.AppValue{Org: "acme", Name: "web", Flycast: netip.MustParseAddr("fdaa:0:18:0:1::5"), UpdatedAt: seedTime}))
	mustPut(r.w.PutMachine(ctx, seedMachine()))
	mustPut(r.w.PutPeer(ctx, registry.Peer{Org: "acme", Name: "laptop", IP: netip.MustParseAddr("fdaa:0:18:a7b:9::2"), Region: "ams", PublicKey: peerKey, UpdatedAt: seedTime}))
	mustPut(r.w.PutGateway(ctx, registry.Gateway{Region: "ams", Endpoint: "203.0.113.7:51820", PublicKey: gatewayKey, UpdatedAt: seedTime}))
	mustPut(r.w.PutRegion(ctx, registry.Region{Code: "xyz", Name: "Test", Lat: 1.5, Lon: -2.25, UpdatedAt: seedTime}))
}

func seedMachine() registry.Machine {
	return registry.Machine{
		Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "ams",
		IP: netip.MustParseAddr("fdaa:0:18:a7b:1::2"), State: registry.StateStarted,
		ProcessGroup: "app", Metadata: map[string]string{"role": "primary"}, UpdatedAt: seedTime,
	}
}

// takeUpdatedAt returns a decoded value's updated_at and the value with it
// cleared, for comparing the rest.
func takeUpdatedAt(v any) (time.Time, any) {
	var t *time.Time
	switch v := v.(type) {
	case *registry.OrgValue:
		t = &v.UpdatedAt
	case *registry.AppValue:
		t = &v.UpdatedAt
	case *registry.Machine:
		t = &v.UpdatedAt
	case *registry.Peer:
		t = &v.UpdatedAt
	case *registry.Gateway:
		t = &v.UpdatedAt
	case *registry.Region:
		t = &v.UpdatedAt
	default:
		return time.Time{}, v
	}
	at := *t
	*t = time.Time{}
	return at, v
}
