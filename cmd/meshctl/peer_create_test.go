package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// parseWGConfig reads a wg-quick configuration with one [Interface] and
// one [Peer] section into section -> key -> value.
func parseWGConfig(t *testing.T, text string) map[string]map[string]string {
	t.Helper()
	conf := map[string]map[string]string{}
	var section string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if conf[section] != nil {
				t.Fatalf("section [%s] twice in\n%s", section, text)
			}
			conf[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %q is not key = value inside a section:\n%s", line, text)
			}
			conf[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return conf
}

// snapshot loads the test registry as a server would.
func (r *testRegistry) snapshot() *registry.Snapshot {
	r.t.Helper()
	var b strings.Builder
	for k, v := range r.dump() {
		fmt.Fprintf(&b, "%s %s\n", k, v)
	}
	snap, _, err := registry.SnapshotFromText(b.String())
	if err != nil {
		r.t.Fatal(err)
	}
	return snap
}

func TestPeerCreate(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, nil)
	r.seed()
	out := r.mustRun("peer", "create", "dev", "--org", "acme", "--region", "ams")
	conf := parseWGConfig(t, out)
	iface, peer := conf["Interface"], conf["Peer"]
	if len(conf) != 2 || iface == nil || peer == nil {
		t.Fatalf("want [Interface] and [Peer], got\n%s", out)
	}
	wantIface := map[string]string{"Address": "fdaa:0:18:fffe::2/128", "DNS": "fdaa:0:18::3"}
	wantPeer := map[string]string{"PublicKey": gatewayKey, "Endpoint": "203.0.113.7:51820",
		"AllowedIPs": "fdaa:0:18::/48", "PersistentKeepalive": "25"}
	for k, v := range wantIface {
		if iface[k] != v {
			t.Errorf("[Interface] %s = %q, want %q", k, iface[k], v)
		}
	}
	for k, v := range wantPeer {
		if peer[k] != v {
			t.Errorf("[Peer] %s = %q, want %q", k, peer[k], v)
		}
	}
	if len(iface) != 3 || len(peer) != 4 {
		t.Errorf("unexpected keys in\n%s", out)
	}

	// The registry holds the public key of the printed private key.
	stored, _ := r.decode("peers/acme/dev").(*registry.Peer)
	if stored == nil {
		t.Fatal("peers/acme/dev not written")
	}
	priv, err := decodeKey(iface["PrivateKey"])
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := wgKeyPairFrom(priv)
	if stored.PublicKey != kp.Public || stored.IP.String() != "fdaa:0:18:fffe::2" || stored.Region != "ams" || stored.UpdatedAt.IsZero() {
		t.Fatalf("stored %+v; public key of the printed private key %s", stored, kp.Public)
	}

	// Addresses go up, and the lowest freed one is handed out again.
	r.mustRun("peer", "create", "interactive-1a2b", "--org", "acme", "--region", "ams")
	r.mustRun("peer", "create", "ci", "--org", "acme", "--region", "ams")
	r.mustRun("peer", "create", "other", "--org", "globex", "--region", "ams")
	r.mustRun("peer", "rm", "dev", "--org", "acme")
	r.mustRun("peer", "create", "dev2", "--org", "acme", "--region", "ams")
	for path, ip := range map[string]string{
		"peers/acme/interactive-1a2b": "fdaa:0:18:fffe::3",
		"peers/acme/ci":               "fdaa:0:18:fffe::4",
		"peers/acme/dev2":             "fdaa:0:18:fffe::2",
		"peers/globex/other":          "fdaa:0:19:fffe::2",
	} {
		if p, _ := r.decode(path).(*registry.Peer); p == nil || p.IP.String() != ip {
			t.Errorf("%s = %+v, want ip %s", path, p, ip)
		}
	}

	// What DNS answers from this registry.
	snap := r.snapshot()
	acme := snap.Org("acme")
	asker := zones.Asker{Org: acme, Addr: netip.MustParseAddr("fdaa:0:18:fffe::2")}
	asker.Owner, _ = acme.Owner(asker.Addr)
	if asker.Owner.Peer == nil || asker.Owner.Peer.Name != "dev2" {
		t.Fatalf("owner of the peer address: %+v", asker.Owner)
	}
	ask := func(name string, qtype uint16) zones.Result {
		return zones.Answer(snap, asker, dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}, zones.Config{TTL: 5})
	}
	if res := ask("_peer.internal.", dns.TypeTXT); len(res.Answer) != 1 || res.Answer[0].(*dns.TXT).Txt[0] != "ci,dev2,laptop" {
		t.Errorf("_peer.internal: %v", res.Answer)
	}
	for name, ip := range map[string]string{"dev2._peer.internal.": "fdaa:0:18:fffe::2", "interactive-1a2b._peer.internal.": "fdaa:0:18:fffe::3"} {
		if res := ask(name, dns.TypeAAAA); len(res.Answer) != 1 || res.Answer[0].(*dns.AAAA).AAAA.String() != ip {
			t.Errorf("%s: rcode %d, %v; want %s", name, res.Rcode, res.Answer, ip)
		}
	}
}

func TestPeerCreateRejects(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, nil)
	r.seed()
	before := r.dump()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"peer", "create", "laptop", "--org", "acme", "--region", "ams"}, exitFailure, "peer laptop of org acme: already exists"},
		{[]string{"peer", "create", "new", "--org", "acme", "--region", "syd"}, exitFailure, "region syd has no WireGuard gateway"},
		{[]string{"peer", "create", "new", "--org", "initech", "--region", "ams"}, exitFailure, `org "initech": not registered`},
		{[]string{"peer", "create", "New", "--org", "acme", "--region", "ams"}, exitFailure, `peer "New": only lowercase`},
		{[]string{"peer", "create", "new", "--org", "acme", "--region", "vms"}, exitFailure, "vms"},
		{[]string{"peer", "create", "new", "--org", "acme"}, exitUsage, `required flag(s) "region" not set`},
		{[]string{"peer", "create", "--org", "acme", "--region", "ams"}, exitUsage, "takes NAME"},
	} {
		res := r.run(tc.args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.want) || res.stdout != "" {
			t.Errorf("meshctl %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), res.code, res.stdout, res.stderr, tc.code, tc.want)
		}
	}
	if after := r.dump(); !maps.Equal(before, after) {
		t.Errorf("a rejected create changed the registry:\nbefore %v\nafter  %v", before, after)
	}
}

// TestPeerCreateConcurrent runs many creates at once, in two orgs: each
// gets its own address, and together they fill the lowest addresses of each
// org's peer subnet without a gap.
func TestPeerCreateConcurrent(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, etcdtest.Embedded(t))
	r.seed()
	const perOrg = 12
	var wg sync.WaitGroup
	errs := make(chan string, 2*perOrg)
	for _, org := range []string{"acme", "globex"} {
		for i := range perOrg {
			wg.Go(func() {
				res := r.run("peer", "create", fmt.Sprintf("p%d", i), "--org", org, "--region", "ams")
				if res.code != 0 {
					errs <- fmt.Sprintf("%s p%d: exit %d: %s", org, i, res.code, res.stderr)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for org, net := range map[string]string{"acme": "fdaa:0:18", "globex": "fdaa:0:19"} {
		var got, want []string
		for i := range perOrg {
			p, _ := r.decode(fmt.Sprintf("peers/%s/p%d", org, i)).(*registry.Peer)
			if p == nil {
				t.Fatalf("%s p%d missing", org, i)
			}
			got = append(got, p.IP.String())
			want = append(want, fmt.Sprintf("%s:fffe::%x", net, i+2))
		}
		slices.SortFunc(got, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: addresses %v, want %v", org, got, want)
		}
	}
}

func TestPeerSubnet(t *testing.T) {
	t.Parallel()
	n := netip.MustParsePrefix("fdaa:0:18::/48")
	if got := peerSubnet(n).String(); got != "fdaa:0:18:fffe::/64" {
		t.Fatalf("peerSubnet = %s", got)
	}
	if got := orgDNSAddr(n).String(); got != "fdaa:0:18::3" {
		t.Fatalf("orgDNSAddr = %s", got)
	}
	used := map[netip.Addr]bool{netip.MustParseAddr("fdaa:0:18:fffe::2"): true, netip.MustParseAddr("fdaa:0:18:fffe::4"): true}
	if got := nextPeerAddr(peerSubnet(n), used).String(); got != "fdaa:0:18:fffe::3" {
		t.Fatalf("nextPeerAddr = %s", got)
	}
}

// decodeKey reads a base64 WireGuard key.
func decodeKey(s string) ([32]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return [32]byte{}, fmt.Errorf("key %q: not 32 bytes of base64 (%v)", s, err)
	}
	return [32]byte(b), nil
}
