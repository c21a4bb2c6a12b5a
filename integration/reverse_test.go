package integration

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
)

// Reverse names (SPEC §5) against a running meshdns, with the real dig
// (`dig -x`) and Go's resolver. The asker is dig on loopback:
// --default-org acme.

const (
	rMachine = "fdaa:0:18:a7b:1::2" // web/aa01, started
	rStopped = "fdaa:0:18:a7b:1::3" // web/aa02, stopped (deployed)
	rGone    = "fdaa:0:18:a7b:1::4" // web/dd01, destroyed
	rPeer    = "fdaa:0:18:a7b:9::2" // alice
	rAPI     = "fdaa:0:18::3"
	rFlycast = "fdaa:0:18:0:1::5" // web
	rUnused  = "fdaa:0:18:a7b:1::99"
	oMachine = "fdaa:0:19:a7b:1::2" // other's web/0b01
	oPeer    = "fdaa:0:19:a7b:9::2"
	oFlycast = "fdaa:0:19:0:1::5"
	oUnused  = "fdaa:0:19:a7b:1::99"
)

var reverseDoc = registryDoc{
	Orgs: []org{{Name: "acme", Network: "fdaa:0:18::/48"}, {Name: "other", Network: "fdaa:0:19::/48"}},
	Apps: []app{{Org: "acme", Name: "web", Flycast: rFlycast}, {Org: "other", Name: "web", Flycast: oFlycast}},
	Machines: []machine{
		{Org: "acme", App: "web", ID: "aa01", Region: "ams", IP: rMachine, State: "started", Services: httpSvc(8080)},
		{Org: "acme", App: "web", ID: "aa02", Region: "ams", IP: rStopped, State: "stopped"},
		{Org: "acme", App: "web", ID: "dd01", Region: "ams", IP: rGone, State: "destroyed"},
		{Org: "other", App: "web", ID: "0b01", Region: "ams", IP: oMachine, State: "started"},
	},
	Peers: []peer{{Org: "acme", Name: "alice", IP: rPeer, Region: "ams"}, {Org: "other", Name: "bob", IP: oPeer}},
}

func arpaName(t *testing.T, addr string) string {
	t.Helper()
	r, err := dns.ReverseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ptr expects exactly one PTR record with that target.
func ptr(target string) want {
	return want{rcode: "NOERROR", check: func(t *testing.T, res *digtest.Result) {
		t.Helper()
		if len(res.Answer) != 1 {
			t.Fatalf("%d answers, want one PTR\n%s", len(res.Answer), res.Raw)
		}
		if p, ok := res.Answer[0].(*dns.PTR); !ok || p.Ptr != target {
			t.Errorf("answer %v, want PTR %s", res.Answer[0], target)
		}
	}}
}

func startReverse(t *testing.T) *harness.Meshdns {
	t.Helper()
	m := harness.StartMeshdns(t, harness.Args("--default-org", "acme", "--region", "ams"))
	load(t, m, reverseDoc)
	harness.Poll(t, 5*time.Second, 5*time.Millisecond, "reverseDoc served", func() (bool, string) {
		r := m.Query(t, "_peer.internal", dns.TypeTXT, harness.QueryOptions{TCP: true})
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 && strings.Join(r.Answer[0].(*dns.TXT).Txt, "") == "alice", r.String()
	})
	return m
}

// TestReverseNamesDig asks `dig -x` for every kind of address over UDP and
// TCP, an empty non-terminal, the apex, another org's addresses (answered
// exactly like unused ones: status, flags, SOA, size), a name outside
// fdaa::/16, and follows a registry change.
func TestReverseNamesDig(t *testing.T) {
	t.Parallel()
	m := startReverse(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			dig := func(args ...string) *digtest.Result {
				if transport == "tcp" {
					args = append([]string{"+tcp"}, args...)
				}
				return m.Dig(t, args...)
			}
			for _, c := range []struct {
				addr string
				want want
			}{
				{rMachine, ptr("aa01.vm.web.internal.")},
				{rStopped, ptr("aa02.vm.web.internal.")},
				{rPeer, ptr("alice._peer.internal.")},
				{rAPI, ptr("_api.internal.")},
				{rFlycast, ptr("web.flycast.")},
				{rGone, nxdomain},
				{rUnused, nxdomain},
				{oMachine, nxdomain},
				{oPeer, nxdomain},
				{oFlycast, nxdomain},
			} {
				res := dig("-x", c.addr)
				t.Run(c.addr, func(t *testing.T) { checkResponse(t, res, arpaName(t, c.addr), c.want) })
			}
			// Empty non-terminals: the org's /48 and a /64 on the way to its
			// machines; another org's /48 is NXDOMAIN.
			checkResponse(t, dig("ptr", "8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa."), "8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", nodata)
			checkResponse(t, dig("ptr", "b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa."), "b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", nodata)
			checkResponse(t, dig("ptr", "9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa."), "9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", nxdomain)
			// Another type at a PTR name: NODATA.
			checkResponse(t, dig("aaaa", arpaName(t, rMachine)), arpaName(t, rMachine), nodata)
			// The apex.
			soa := dig("soa", "a.a.d.f.ip6.arpa.")
			checkResponse(t, soa, "a.a.d.f.ip6.arpa.", want{rcode: "NOERROR", check: func(t *testing.T, res *digtest.Result) {
				if len(res.Answer) != 1 || res.Answer[0].(*dns.SOA).Ns != "_api.internal." {
					t.Errorf("apex SOA: %v", res.Answer)
				}
			}})
			checkResponse(t, dig("ns", "a.a.d.f.ip6.arpa."), "a.a.d.f.ip6.arpa.", want{rcode: "NOERROR", check: func(t *testing.T, res *digtest.Result) {
				if len(res.Answer) != 1 || res.Answer[0].(*dns.NS).Ns != "_api.internal." {
					t.Errorf("apex NS: %v", res.Answer)
				}
			}})
			// Another org's address looks like an unused one.
			for _, pair := range [][2]string{{oMachine, oUnused}, {oMachine, rUnused}, {oPeer, rUnused}, {oFlycast, rUnused}} {
				a, b := dig("-x", pair[0]), dig("-x", pair[1])
				if a.Status != b.Status || !slices.Equal(a.Flags, b.Flags) || a.MsgSize != b.MsgSize ||
					len(a.Authority) != 1 || len(b.Authority) != 1 || a.Authority[0].String() != b.Authority[0].String() {
					t.Errorf("dig -x %s (another org's) differs from dig -x %s (nobody's):\n%s\n%s", pair[0], pair[1], a.Raw, b.Raw)
				}
			}
			// Outside fdaa::/16: not ours, REFUSED (no --upstream).
			if res := dig("-x", "2001:db8::1"); res.Status != "REFUSED" || res.HasFlag("aa") {
				t.Errorf("dig -x 2001:db8::1: %s, want REFUSED without aa\n%s", res.Status, res.Raw)
			}
		})
	}

	t.Run("a removed machine's PTR goes, a new one's comes", func(t *testing.T) {
		ep := m.EtcdEndpoint()
		m.Dig(t, "-x", rMachine) // cached
		harness.MustMeshctl(t, ep, "machine", "rm", "aa01", "--org", "acme", "--app", "web")
		s := digUntil(t, m, 2*time.Second, "aa01's PTR gone", func(r *digtest.Result) bool { return r.Status == "NXDOMAIN" }, "-x", rMachine)
		t.Logf("machine rm → PTR NXDOMAIN: %v", s)
		harness.MustMeshctl(t, ep, "machine", "put", "cc01", "--org", "acme", "--app", "api", "--region", "fra", "--ip", rUnused)
		s = digUntil(t, m, 2*time.Second, "cc01's PTR", func(r *digtest.Result) bool {
			return r.Status == "NOERROR" && len(r.Answer) == 1 && r.Answer[0].(*dns.PTR).Ptr == "cc01.vm.api.internal."
		}, "-x", rUnused)
		t.Logf("machine put → PTR: %v", s)
	})
}

// TestGoResolverLookupAddr: Go's own resolver (net.Resolver, PreferGo)
// asking a running meshdns reverse-resolves a machine, a peer and
// <network>::3 (LookupAddr got "server misbehaving" from the REFUSED
// meshdns gave before), gets not-found for another org's address, and
// looks up the machine's service with LookupSRV.
func TestGoResolverLookupAddr(t *testing.T) {
	t.Parallel()
	m := startReverse(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, m.Addr())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for addr, want := range map[string]string{
		rMachine: "aa01.vm.web.internal.",
		rPeer:    "alice._peer.internal.",
		rAPI:     "_api.internal.",
	} {
		names, err := r.LookupAddr(ctx, addr)
		if err != nil || !slices.Equal(names, []string{want}) {
			t.Errorf("LookupAddr(%s) = %v, %v; want [%s]", addr, names, err, want)
		}
	}
	for _, addr := range []string{oMachine, rUnused} {
		names, err := r.LookupAddr(ctx, addr)
		if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
			t.Errorf("LookupAddr(%s) = %v, %v; want a not-found DNSError", addr, names, err)
		}
	}
	_, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.internal.")
	var got []string
	for _, s := range srvs {
		got = append(got, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
	}
	if err != nil || !slices.Equal(got, []string{"0 1 8080 aa01.vm.web.internal."}) {
		t.Errorf("LookupSRV(http, tcp, web.internal.) = %v, %v", got, err)
	}
	// The SRV target reverse-resolves to itself.
	if len(srvs) == 1 {
		ips, err := r.LookupIP(ctx, "ip6", srvs[0].Target)
		if err != nil || len(ips) != 1 {
			t.Fatalf("LookupIP %s: %v %v", srvs[0].Target, ips, err)
		}
		if names, err := r.LookupAddr(ctx, ips[0].String()); err != nil || !slices.Equal(names, []string{srvs[0].Target}) {
			t.Errorf("LookupAddr(%s) = %v, %v; want [%s]", ips[0], names, err, srvs[0].Target)
		}
	}
}
