package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadDoc has one entry of every kind, refers to an org in the document
// and one already in etcd, leaves process_group to its default and carries
// an updated_at that load must replace.
const loadDoc = `{
  "orgs": [{"name": "initech", "network": "fdaa:0:20::/48"}],
  "apps": [
    {"org": "initech", "name": "api", "flycast": "fdaa:0:20:0:1::5"},
    {"org": "acme", "name": "db"}
  ],
  "machines": [
    {"org": "initech", "app": "api", "id": "0a1", "region": "iad", "ip": "fdaa:0:20:a7b:1::2", "state": "started",
     "process_group": "worker", "metadata": {"role": "primary"}, "updated_at": "2020-01-01T00:00:00Z"},
    {"org": "acme", "app": "db", "id": "0a2", "region": "ams", "ip": "fdaa:0:18:a7b:2::2", "state": "stopped", "skip_registration": true}
  ],
  "peers": [{"org": "initech", "name": "ci", "ip": "fdaa:0:20:a7b:9::2", "region": "iad", "public_key": "` + peerKey + `"}],
  "gateways": [{"region": "iad", "endpoint": "198.51.100.1:51820", "public_key": "` + gatewayKey + `"}],
  "regions": [{"code": "ams", "name": "Amsterdam", "lat": 52.31, "lon": 4.77}]
}`

func TestLoad(t *testing.T) {
	t.Parallel()
	e := etcdtest.Embedded(t)
	addr := netip.MustParseAddr
	want := map[string]any{
		"orgs/initech":     &registry.OrgValue{Name: "initech", Network: netip.MustParsePrefix("fdaa:0:20::/48")},
		"apps/initech/api": &registry.AppValue{Org: "initech", Name: "api", Flycast: addr("fdaa:0:20:0:1::5")},
		"apps/acme/db":     &registry.AppValue{Org: "acme", Name: "db"},
		"machines/initech/api/0a1": &registry.Machine{Org: "initech", App: "api", ID: "0a1", Region: "iad", IP: addr("fdaa:0:20:a7b:1::2"),
			State: "started", ProcessGroup: "worker", Metadata: map[string]string{"role": "primary"}},
		"machines/acme/db/0a2": &registry.Machine{Org: "acme", App: "db", ID: "0a2", Region: "ams", IP: addr("fdaa:0:18:a7b:2::2"),
			State: "stopped", ProcessGroup: "app", SkipRegistration: true},
		"peers/initech/ci": &registry.Peer{Org: "initech", Name: "ci", IP: addr("fdaa:0:20:a7b:9::2"), Region: "iad", PublicKey: peerKey},
		"gateways/iad":     &registry.Gateway{Region: "iad", Endpoint: "198.51.100.1:51820", PublicKey: gatewayKey},
		"regions/ams":      &registry.Region{Code: "ams", Name: "Amsterdam", Lat: 52.31, Lon: 4.77},
	}
	summary := regexp.MustCompile(`^wrote 1 orgs, 2 apps, 2 machines, 1 peers, 1 gateways, 1 regions in [0-9.]+m?s\n$`)
	for _, from := range []string{"file", "stdin"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			r := newTestRegistry(t, e)
			r.seed()
			before := r.dump()
			start := time.Now()
			var res result
			if from == "stdin" {
				res = r.runStdin(loadDoc, "load", "-")
			} else {
				path := filepath.Join(t.TempDir(), "registry.json")
				if err := os.WriteFile(path, []byte(loadDoc), 0o644); err != nil {
					t.Fatal(err)
				}
				res = r.run("load", path)
			}
			end := time.Now()
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			if !summary.MatchString(res.stdout) {
				t.Errorf("stdout %q, want it to match %s", res.stdout, summary)
			}
			checkStored(t, r, before, want, start, end)
		})
	}
}

// TestListJSONLoads checks that the JSON of the list verbs is the load
// format: a listing loaded into an empty registry reproduces it.
func TestListJSONLoads(t *testing.T) {
	t.Parallel()
	e := etcdtest.Embedded(t)
	src := newTestRegistry(t, e)
	src.seed()
	var doc strings.Builder
	doc.WriteString("{")
	for i, kind := range []string{"org", "app", "machine", "peer", "gateway", "region"} {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, "%q: %s", kind+"s", src.mustRun(kind, "list", "-o", "json"))
	}
	doc.WriteString("}")

	dst := &testRegistry{t: t, endpoint: src.endpoint, prefix: src.prefix + "copy/", cli: src.cli}
	if res := dst.runStdin(doc.String(), "load", "-"); res.code != 0 {
		t.Fatalf("loading the listings: exit %d, stderr %q\n%s", res.code, res.stderr, doc.String())
	}
	// Load stamps its own updated_at; everything else must match.
	stampRE := regexp.MustCompile(`"updated_at":"[^"]*"`)
	strip := func(m map[string]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			if strings.HasPrefix(k, "copy/") {
				continue
			}
			out[k] = stampRE.ReplaceAllString(v, "")
		}
		return out
	}
	got, want := strip(dst.dump()), strip(src.dump())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("loaded listings differ from the original:\n got %v\nwant %v", got, want)
	}
}

// TestLoad100k loads 10 orgs × 100 apps × 100 machines and checks that all
// of them arrived. Speed is logged, not asserted: CI machines vary too much.
// It takes about 1 s, 10 s under the race detector.
func TestLoad100k(t *testing.T) {
	t.Parallel()
	const orgs, apps, machines = 10, 100, 100
	r := newTestRegistry(t, nil)
	path := filepath.Join(t.TempDir(), "big.json")
	doc := bigDoc(orgs, apps, machines)
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := r.run("--timeout", "10m", "load", path)
	took := time.Since(start)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	t.Logf("loaded %d machines (%.1f MB of JSON) in %v: %s", orgs*apps*machines, float64(len(doc))/1e6, took.Round(time.Millisecond), strings.TrimSpace(res.stdout))
	for dir, want := range map[string]int64{"orgs/": orgs, "apps/": orgs * apps, "machines/": orgs * apps * machines} {
		resp, err := r.cli.Get(context.Background(), r.prefix+dir, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != want {
			t.Errorf("%d keys under %s, want %d", resp.Count, dir, want)
		}
	}
}

// bigDoc generates a valid load document: org<o> holds fdaa:0:<100+o>::/48,
// and every machine gets its own address inside its org's network.
func bigDoc(orgs, apps, machines int) []byte {
	regions := []string{"ams", "iad", "ord", "syd", "nrt", "gru"}
	var b bytes.Buffer
	b.WriteString(`{"orgs":[`)
	for o := range orgs {
		sep(&b, o)
		fmt.Fprintf(&b, `{"name":"org%d","network":"fdaa:0:%x::/48"}`, o, 0x100+o)
	}
	b.WriteString(`],"apps":[`)
	for i := range orgs * apps {
		sep(&b, i)
		fmt.Fprintf(&b, `{"org":"org%d","name":"app%d"}`, i/apps, i%apps)
	}
	b.WriteString(`],"machines":[`)
	for i := range orgs * apps * machines {
		sep(&b, i)
		o, a, m := i/(apps*machines), i/machines%apps, i%machines
		fmt.Fprintf(&b, `{"org":"org%d","app":"app%d","id":"%014x","region":"%s","ip":"fdaa:0:%x:%x::%x","state":"started"}`+"\n",
			o, a, i, regions[i%len(regions)], 0x100+o, a, m+2)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func sep(b *bytes.Buffer, i int) {
	if i > 0 {
		b.WriteByte(',')
	}
}
