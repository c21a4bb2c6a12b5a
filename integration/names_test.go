package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/zones"
)

// Addresses of the names fixture. The asker (dig on loopback) is in no
// org's network, so it belongs to --default-org acme and its region is the
// server's --region ams: answers come ams first, then fra (~400 km), iad,
// syd, and the region zzz, which no table knows, last.
const (
	ipAms1    = "fdaa:0:18:a7b:1::2" // 3d8d9e0b2ee489, role=primary
	ipAms2    = "fdaa:0:18:a7b:1::3" // e784079b449483, role=replica
	ipFra     = "fdaa:0:18:a7b:2::2" // 91851edb6e4e83, worker, role=replica
	ipIad     = "fdaa:0:18:a7b:3::2" // 2865d4e1a47308, worker
	ipSyd     = "fdaa:0:18:a7b:4::2" // 0e28654b6d6378
	ipZzz     = "fdaa:0:18:a7b:8::2" // a1b2c3d4e5f6a7, unknown region
	ipLaptop  = "fdaa:0:18:a7b:9::2"
	ipInter   = "fdaa:0:18:a7b:9::3"
	ipDesk    = "fdaa:0:18:a7b:9::4"
	ipFlycast = "fdaa:0:18:0:1::5"
)

// namesDoc exercises every rule of SPEC §2: started, stopped, destroyed
// and skip_registration machines, process groups, metadata, an unknown
// region, an app with only a stopped machine (api), an app with no
// machines (db), peers (one interactive) and a second org that acme must
// never see.
var namesDoc = registryDoc{
	Orgs: []org{
		{Name: "acme", Network: "fdaa:0:18::/48"},
		{Name: "other", Network: "fdaa:0:19::/48"},
	},
	Apps: []app{
		{Org: "acme", Name: "web", Flycast: ipFlycast},
		{Org: "acme", Name: "db"},
		{Org: "other", Name: "secret", Flycast: "fdaa:0:19:0:1::5"},
	},
	Machines: []machine{
		{Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "ams", IP: ipAms1, State: "started", Metadata: map[string]string{"role": "primary"}},
		{Org: "acme", App: "web", ID: "e784079b449483", Region: "ams", IP: ipAms2, State: "started", Metadata: map[string]string{"role": "replica"}},
		{Org: "acme", App: "web", ID: "91851edb6e4e83", Region: "fra", IP: ipFra, State: "started", ProcessGroup: "worker", Metadata: map[string]string{"role": "replica"}},
		{Org: "acme", App: "web", ID: "2865d4e1a47308", Region: "iad", IP: ipIad, State: "started", ProcessGroup: "worker"},
		{Org: "acme", App: "web", ID: "0e28654b6d6378", Region: "syd", IP: ipSyd, State: "started"},
		{Org: "acme", App: "web", ID: "a1b2c3d4e5f6a7", Region: "zzz", IP: ipZzz, State: "started"},
		{Org: "acme", App: "web", ID: "5683d9a7c0e368", Region: "sin", IP: "fdaa:0:18:a7b:5::2", State: "stopped"},
		{Org: "acme", App: "web", ID: "784e42ec6e6d08", Region: "lhr", IP: "fdaa:0:18:a7b:6::2", State: "destroyed"},
		{Org: "acme", App: "web", ID: "148e2d5a3e7189", Region: "ord", IP: "fdaa:0:18:a7b:7::2", State: "started", SkipRegistration: true},
		{Org: "acme", App: "api", ID: "9080e6e0b7d218", Region: "fra", IP: "fdaa:0:18:a7c:1::2", State: "stopped"},
		{Org: "other", App: "secret", ID: "00ff00ff00ff00", Region: "ams", IP: "fdaa:0:19:a7b:1::2", State: "started"},
		{Org: "other", App: "web", ID: "11ff11ff11ff11", Region: "ams", IP: "fdaa:0:19:a7b:1::3", State: "started"},
	},
	Peers: []peer{
		{Org: "acme", Name: "laptop", IP: ipLaptop, Region: "ams"},
		{Org: "acme", Name: "interactive-abc123", IP: ipInter},
		{Org: "acme", Name: "desk", IP: ipDesk, Region: "fra"},
		{Org: "other", Name: "spy", IP: "fdaa:0:19:a7b:9::2"},
	},
}

// webAll is web.internal for an asker in ams.
var webAll = [][]string{{ipAms1, ipAms2}, one(ipFra), one(ipIad), one(ipSyd), one(ipZzz)}

// nameCases are every name shape of SPEC §2, with the answers namesDoc
// must give, keyed "<name> <type>".
func nameCases() []struct {
	name, qtype string
	want        want
} {
	d := namesDoc
	type c = struct {
		name, qtype string
		want        want
	}
	return []c{
		// <app>.internal and global.<app>.internal: every started machine.
		{"web.internal", "AAAA", noerror(webAll...)},
		{"global.web.internal", "AAAA", noerror(webAll...)},
		{"api.internal", "AAAA", nodata}, // exists, nothing started
		{"db.internal", "AAAA", nodata},  // apps/ key, no machines
		{"nope.internal", "AAAA", nxdomain},
		{"secret.internal", "AAAA", nxdomain}, // another org's app
		// <region>.<app>.internal.
		{"ams.web.internal", "AAAA", noerror([]string{ipAms1, ipAms2})},
		{"fra.web.internal", "AAAA", noerror(one(ipFra))},
		{"zzz.web.internal", "AAAA", noerror(one(ipZzz))},
		{"sin.web.internal", "AAAA", nodata},   // only a stopped machine
		{"lhr.web.internal", "AAAA", nxdomain}, // only a destroyed one
		{"ord.web.internal", "AAAA", nxdomain}, // only skip_registration
		{"nrt.web.internal", "AAAA", nxdomain},
		// <id>.vm.<app>.internal.
		{"3d8d9e0b2ee489.vm.web.internal", "AAAA", noerror(one(ipAms1))},
		{"a1b2c3d4e5f6a7.vm.web.internal", "AAAA", noerror(one(ipZzz))},
		{"5683d9a7c0e368.vm.web.internal", "AAAA", nodata},   // stopped
		{"784e42ec6e6d08.vm.web.internal", "AAAA", nxdomain}, // destroyed
		{"148e2d5a3e7189.vm.web.internal", "AAAA", nxdomain}, // skip_registration
		{"ffffffffffffff.vm.web.internal", "AAAA", nxdomain},
		{"11ff11ff11ff11.vm.web.internal", "AAAA", nxdomain}, // other org's web
		// <group>.process.<app>.internal.
		{"worker.process.web.internal", "AAAA", noerror(one(ipFra), one(ipIad))},
		{"app.process.web.internal", "AAAA", noerror([]string{ipAms1, ipAms2}, one(ipSyd), one(ipZzz))},
		{"nope.process.web.internal", "AAAA", nxdomain},
		// top<N>.nearest.of.<app>.internal.
		{"top1.nearest.of.web.internal", "AAAA", want{rcode: "NOERROR", check: func(t *testing.T, res *digtest.Result) {
			got := aaaaOf(res.Answer)
			if len(got) != 1 || (got[0] != ipAms1 && got[0] != ipAms2) {
				t.Errorf("answers %v, want one of the ams machines %s, %s", got, ipAms1, ipAms2)
			}
		}}},
		{"top2.nearest.of.web.internal", "AAAA", noerror([]string{ipAms1, ipAms2})},
		{"top3.nearest.of.web.internal", "AAAA", noerror([]string{ipAms1, ipAms2}, one(ipFra))},
		{"top64.nearest.of.web.internal", "AAAA", noerror(webAll...)},
		{"top65.nearest.of.web.internal", "AAAA", nxdomain},
		{"top0.nearest.of.web.internal", "AAAA", nxdomain},
		{"top1.nearest.of.api.internal", "AAAA", nodata},
		{"top1.nearest.of.nope.internal", "AAAA", nxdomain},
		// <value>.<key>.kv._metadata.<app>.internal.
		{"primary.role.kv._metadata.web.internal", "AAAA", noerror(one(ipAms1))},
		{"replica.role.kv._metadata.web.internal", "AAAA", noerror(one(ipAms2), one(ipFra))},
		{"nope.role.kv._metadata.web.internal", "AAAA", nxdomain},
		{"primary.nope.kv._metadata.web.internal", "AAAA", nxdomain},
		// Peers, _api, flycast.
		{"laptop._peer.internal", "AAAA", noerror(one(ipLaptop))},
		{"interactive-abc123._peer.internal", "AAAA", noerror(one(ipInter))},
		{"nobody._peer.internal", "AAAA", nxdomain},
		{"spy._peer.internal", "AAAA", nxdomain}, // other org's peer
		{"_api.internal", "AAAA", noerror(one("fdaa:0:18::3"))},
		{"web.flycast", "AAAA", noerror(one(ipFlycast))},
		{"db.flycast", "AAAA", nodata}, // app without a flycast address
		{"nope.flycast", "AAAA", nxdomain},
		{"secret.flycast", "AAAA", nxdomain},
		// TXT lists.
		{"_apps.internal", "TXT", txt(d.appsText("acme"))},
		{"vms.web.internal", "TXT", txt(d.vmsText("acme", "web", false))},
		{"all.vms.web.internal", "TXT", txt(d.vmsText("acme", "web", true))},
		{"regions.web.internal", "TXT", txt(d.regionsText("acme", "web", false))},
		{"all.regions.web.internal", "TXT", txt(d.regionsText("acme", "web", true))},
		{"vms.api.internal", "TXT", txt("")}, // exists, empty list: one ""
		{"all.vms.api.internal", "TXT", txt(d.vmsText("acme", "api", true))},
		{"regions.api.internal", "TXT", txt("")},
		{"all.regions.api.internal", "TXT", txt("fra")},
		{"vms.db.internal", "TXT", txt("")},
		{"vms.nope.internal", "TXT", nxdomain},
		{"_instances.internal", "TXT", txt(d.instancesText("acme", false))},
		{"all._instances.internal", "TXT", txt(d.instancesText("acme", true))},
		{"_peer.internal", "TXT", txt(d.peersText("acme"))},
		{"_whoami.internal", "TXT", txt("org=acme,region=ams,ip=127.0.0.1")},
		// Empty non-terminals (RFC 8020): NOERROR without records.
		{"vm.web.internal", "AAAA", nodata},
		{"process.web.internal", "AAAA", nodata},
		{"of.web.internal", "AAAA", nodata},
		{"nearest.of.web.internal", "AAAA", nodata},
		{"_metadata.web.internal", "AAAA", nodata},
		{"kv._metadata.web.internal", "AAAA", nodata},
		{"role.kv._metadata.web.internal", "AAAA", nodata},
		{"vm.db.internal", "AAAA", nxdomain},            // no machine below it
		{"kv._metadata.api.internal", "AAAA", nxdomain}, // no metadata below it
		{"_metadata.nope.internal", "AAAA", nxdomain},
		// Names that exist, asked for a type they do not hold: NODATA.
		{"web.internal", "A", nodata},
		{"3d8d9e0b2ee489.vm.web.internal", "A", nodata},
		{"web.internal", "TXT", nodata},
		{"_apps.internal", "AAAA", nodata},
		{"web.flycast", "A", nodata},
		// The apexes.
		{"internal", "SOA", want{rcode: "NOERROR", check: checkApexSOA("internal.")}},
		{"internal", "NS", want{rcode: "NOERROR", check: checkApexNS("internal.")}},
		{"flycast", "SOA", want{rcode: "NOERROR", check: checkApexSOA("flycast.")}},
		{"flycast", "NS", want{rcode: "NOERROR", check: checkApexNS("flycast.")}},
	}
}

func checkApexSOA(zone string) func(*testing.T, *digtest.Result) {
	return func(t *testing.T, res *digtest.Result) {
		t.Helper()
		if len(res.Answer) != 1 {
			t.Errorf("%d answers, want one SOA\n%s", len(res.Answer), res.Raw)
			return
		}
		soa, ok := res.Answer[0].(*dns.SOA)
		if !ok || soa.Hdr.Name != zone || soa.Ns != "_api.internal." || soa.Minttl != ttl || soa.Serial == 0 {
			t.Errorf("answer %v, want %s SOA with mname _api.internal., minimum %d and a serial", res.Answer[0], zone, ttl)
		}
	}
}

func checkApexNS(zone string) func(*testing.T, *digtest.Result) {
	return func(t *testing.T, res *digtest.Result) {
		t.Helper()
		if len(res.Answer) != 1 {
			t.Errorf("%d answers, want one NS\n%s", len(res.Answer), res.Raw)
			return
		}
		ns, ok := res.Answer[0].(*dns.NS)
		if !ok || ns.Hdr.Name != zone || ns.Ns != "_api.internal." {
			t.Errorf("answer %v, want %s NS _api.internal.", res.Answer[0], zone)
		}
	}
}

// startNames starts meshdns for the names tests: embedded etcd,
// --default-org acme, --region ams, namesDoc loaded with meshctl load.
func startNames(t *testing.T) *harness.Meshdns {
	t.Helper()
	m := harness.StartMeshdns(t, harness.Args("--default-org", "acme", "--region", "ams"))
	load(t, m, namesDoc)
	// The load is one batch of transactions; wait until the last machine
	// written is served.
	harness.Poll(t, 5*time.Second, 5*time.Millisecond, "namesDoc served", func() (bool, string) {
		r := m.Query(t, "_instances.internal", dns.TypeTXT, harness.QueryOptions{TCP: true})
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return false, r.String()
		}
		got := strings.Join(r.Answer[0].(*dns.TXT).Txt, "")
		return got == namesDoc.instancesText("acme", false), got
	})
	return m
}

// TestNames asks every name shape of SPEC §2 with the real dig, over UDP
// and over TCP, and checks rcode, AA, TTL, exact answers in nearest-first
// order, TXT texts byte for byte, NXDOMAIN against NODATA, and the SOA of
// negative answers.
func TestNames(t *testing.T) {
	t.Parallel()
	m := startNames(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			for _, c := range nameCases() {
				args := []string{strings.ToLower(c.qtype), c.name}
				if transport == "tcp" {
					args = append([]string{"+tcp"}, args...)
				}
				res := m.Dig(t, args...)
				if want := strings.ToUpper(transport); res.Protocol != want {
					t.Errorf("%s %s: answered over %q, want %s", c.name, c.qtype, res.Protocol, want)
				}
				t.Run(c.name+"_"+c.qtype, func(t *testing.T) {
					checkResponse(t, res, c.name, c.want)
					if res.HasFlag("ra") {
						t.Errorf("ra flag set on an authoritative answer without --upstream")
					}
				})
			}
		})
	}

	t.Run("same order every time, UDP and TCP alike", func(t *testing.T) {
		var orders [][]string
		for _, extra := range [][]string{nil, nil, {"+tcp"}, {"+tcp"}} {
			orders = append(orders, aaaaOf(m.Dig(t, append(extra, "aaaa", "web.internal")...).Answer))
		}
		for _, o := range orders[1:] {
			if !slices.Equal(o, orders[0]) {
				t.Errorf("web.internal orders differ between queries from the same asker: %v", orders)
				break
			}
		}
	})

	t.Run("outside the zones: REFUSED", func(t *testing.T) {
		res := m.Dig(t, "aaaa", "example.com")
		if res.Status != "REFUSED" || res.HasFlag("aa") || len(res.Answer) != 0 {
			t.Errorf("example.com AAAA without --upstream: %s flags %v, want REFUSED without aa\n%s", res.Status, res.Flags, res.Raw)
		}
	})
}

// TestWire checks what dig's options change on the wire: RD/RA, the case
// of the question, EDNS versions, no EDNS, buffer sizes and truncation of
// a TXT list.
func TestWire(t *testing.T) {
	t.Parallel()
	m := startNames(t)

	t.Run("+norec", func(t *testing.T) {
		res := m.Dig(t, "+norec", "aaaa", "web.internal")
		checkResponse(t, res, "web.internal", noerror(webAll...))
		if res.HasFlag("rd") || res.HasFlag("ra") {
			t.Errorf("flags %v: want neither rd nor ra for a +norec query", res.Flags)
		}
		res = m.Dig(t, "aaaa", "web.internal")
		if !res.HasFlag("rd") || res.HasFlag("ra") {
			t.Errorf("flags %v: want rd copied from the query and no ra", res.Flags)
		}
	})

	t.Run("mixed case echoed byte for byte", func(t *testing.T) {
		for _, c := range []struct{ name, qtype string }{
			{"WeB.InTeRnAl", "aaaa"},
			{"3D8D9E0B2EE489.Vm.wEb.INTERNAL", "aaaa"},
			{"_InStAnCeS.InTeRnAl", "txt"},
			{"WEB.FLYCAST", "aaaa"},
		} {
			for _, extra := range [][]string{nil, {"+tcp"}} {
				res := m.Dig(t, append(extra, c.qtype, c.name)...)
				if res.Status != "NOERROR" || len(res.Answer) == 0 {
					t.Errorf("%s %s over %s: %s with %d answers\n%s", c.qtype, c.name, res.Protocol, res.Status, len(res.Answer), res.Raw)
					continue
				}
				if len(res.Question) != 1 || res.Question[0].Name != c.name+"." {
					t.Errorf("%s over %s: question %v, want %s. byte for byte", c.name, res.Protocol, res.Question, c.name)
				}
				var wrong []string
				for _, rr := range res.Answer {
					if rr.Header().Name != c.name+"." {
						wrong = append(wrong, rr.Header().Name)
					}
				}
				if len(wrong) > 0 {
					t.Errorf("%s %s over %s: %d of %d answer owners are %q, want the question's bytes %q",
						c.qtype, c.name, res.Protocol, len(wrong), len(res.Answer), wrong[0], c.name+".")
				}
			}
		}
		// And the answer is the same as for the lowercase name.
		res := m.Dig(t, "aaaa", "WeB.InTeRnAl")
		checkAAAA(t, res, webAll)
	})

	t.Run("+edns=1: BADVERS", func(t *testing.T) {
		res := m.Dig(t, "+edns=1", "+noednsnegotiation", "aaaa", "web.internal")
		if res.Status != "BADVERS" || len(res.Answer) != 0 {
			t.Errorf("EDNS version 1: %s with %d answers, want BADVERS and no answer\n%s", res.Status, len(res.Answer), res.Raw)
		}
		if res.EDNS == nil || res.EDNS.Version != 0 {
			t.Errorf("EDNS %+v: want our OPT with version 0 (the version we speak)\n%s", res.EDNS, res.Raw)
		}
		// dig's default: negotiate down to version 0 and get the answer.
		res = m.Dig(t, "+edns=1", "aaaa", "web.internal")
		checkResponse(t, res, "web.internal", noerror(webAll...))
	})

	t.Run("+noedns: no OPT in the reply", func(t *testing.T) {
		res := m.Dig(t, "+noedns", "aaaa", "web.internal")
		checkResponse(t, res, "web.internal", noerror(webAll...))
		if res.EDNS != nil {
			t.Errorf("reply has an OPT record (%+v) although the query had none\n%s", res.EDNS, res.Raw)
		}
	})

	t.Run("EDNS options: COOKIE answered, others not echoed", func(t *testing.T) {
		// dig sends a COOKIE option by default; meshdns answers it with a
		// server cookie (RFC 7873) and echoes nothing else (no NSID).
		res := m.Dig(t, "+cookie", "+nsid", "aaaa", "web.internal")
		checkResponse(t, res, "web.internal", noerror(webAll...))
		if res.EDNS == nil {
			t.Fatalf("no OPT in the reply to an EDNS query\n%s", res.Raw)
		}
		if o := res.EDNS.Options; len(o) != 1 || !strings.HasPrefix(o[0], "COOKIE: ") || !strings.HasSuffix(o[0], "(good)") {
			t.Errorf("reply carries EDNS options %q, want only a good COOKIE\n%s", o, res.Raw)
		}
	})

	// all._instances.internal is about 600 bytes: more than 512.
	big := namesDoc.instancesText("acme", true)
	t.Run("+bufsize=512", func(t *testing.T) {
		res := m.Dig(t, "+bufsize=512", "aaaa", "web.internal")
		checkResponse(t, res, "web.internal", noerror(webAll...))
		if res.MsgSize > 512 {
			t.Errorf("reply of %d bytes to a client that allows 512", res.MsgSize)
		}

		res = m.Dig(t, "+bufsize=512", "+ignore", "txt", "all._instances.internal")
		if !res.HasFlag("tc") || res.MsgSize > 512 || res.Protocol != "UDP" {
			t.Errorf("%d-byte TXT with +bufsize=512 +ignore: flags %v, %d bytes over %s; want tc set and at most 512 bytes over UDP\n%s",
				len(big), res.Flags, res.MsgSize, res.Protocol, res.Raw)
		}
		res = m.Dig(t, "+bufsize=512", "txt", "all._instances.internal")
		if !res.RetriedTCP || res.Protocol != "TCP" {
			t.Errorf("dig did not retry over TCP (RetriedTCP %v, protocol %s)\n%s", res.RetriedTCP, res.Protocol, res.Raw)
		}
		checkResponse(t, res, "all._instances.internal", txt(big))
	})

	t.Run("no EDNS: 512 bytes at most, TC set", func(t *testing.T) {
		r, size := m.QuerySize(t, "all._instances.internal", dns.TypeTXT, harness.QueryOptions{})
		if size > 512 || !r.Truncated {
			t.Errorf("reply without EDNS: %d bytes, TC %v; want at most 512 and TC", size, r.Truncated)
		}
		if r.IsEdns0() != nil {
			t.Errorf("OPT in the reply to a query without one")
		}
		r = m.Query(t, "all._instances.internal", dns.TypeTXT, harness.QueryOptions{TCP: true})
		if r.Truncated || len(r.Answer) != 1 {
			t.Fatalf("over TCP: TC %v, %d answers; want the whole TXT record\n%v", r.Truncated, len(r.Answer), r)
		}
		if got := strings.Join(r.Answer[0].(*dns.TXT).Txt, ""); got != big {
			t.Errorf("over TCP: text %q, want %q", got, big)
		}
	})
}

// TestFreshness changes machines with meshctl and checks that the very
// next dig (at worst within 2 s) sees each change.
func TestFreshness(t *testing.T) {
	t.Parallel()
	m := harness.StartMeshdns(t, harness.Args("--default-org", "acme", "--region", "ams"))
	ep := m.EtcdEndpoint()
	harness.MustMeshctl(t, ep, "org", "put", "acme", "--network", "fdaa:0:18::/48")
	harness.MustMeshctl(t, ep, "app", "put", "web", "--org", "acme")
	machines := []struct{ id, region, ip string }{
		{"aa01", "ams", "fdaa:0:18:1::1"},
		{"bb02", "fra", "fdaa:0:18:1::2"},
		{"cc03", "iad", "fdaa:0:18:1::3"},
	}
	for _, mc := range machines {
		harness.MustMeshctl(t, ep, "machine", "put", mc.id, "--org", "acme", "--app", "web", "--region", mc.region, "--ip", mc.ip)
	}
	all := [][]string{one("fdaa:0:18:1::1"), one("fdaa:0:18:1::2"), one("fdaa:0:18:1::3")}
	digUntil(t, m, 5*time.Second, "the three machines", func(r *digtest.Result) bool {
		return r.Status == "NOERROR" && len(r.Answer) == 3
	}, "aaaa", "web.internal")
	checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(all...))

	has := func(r *digtest.Result, ip string) bool { return slices.Contains(aaaaOf(r.Answer), ip) }
	const deadline = 2 * time.Second
	report := func(what string, s seen) {
		t.Logf("%s: %v", what, s)
	}

	t.Run("stopped machine disappears", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "state", "bb02", "stopped", "--org", "acme", "--app", "web")
		s := digUntil(t, m, deadline, "bb02 gone from web.internal", func(r *digtest.Result) bool {
			return r.Status == "NOERROR" && !has(r, "fdaa:0:18:1::2")
		}, "aaaa", "web.internal")
		report("stop → gone from web.internal", s)
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(one("fdaa:0:18:1::1"), one("fdaa:0:18:1::3")))
		checkResponse(t, m.Dig(t, "aaaa", "bb02.vm.web.internal"), "bb02.vm.web.internal", nodata)
		checkResponse(t, m.Dig(t, "aaaa", "fra.web.internal"), "fra.web.internal", nodata)
	})

	t.Run("started machine appears", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "state", "bb02", "started", "--org", "acme", "--app", "web")
		s := digUntil(t, m, deadline, "bb02 back in web.internal", func(r *digtest.Result) bool {
			return has(r, "fdaa:0:18:1::2")
		}, "aaaa", "web.internal")
		report("start → in web.internal", s)
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(all...))
	})

	t.Run("new machine appears", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "put", "dd04", "--org", "acme", "--app", "web", "--region", "syd", "--ip", "fdaa:0:18:1::4")
		s := digUntil(t, m, deadline, "dd04.vm.web.internal", func(r *digtest.Result) bool {
			return has(r, "fdaa:0:18:1::4")
		}, "aaaa", "dd04.vm.web.internal")
		report("put → dd04.vm.web.internal answers", s)
		checkResponse(t, m.Dig(t, "aaaa", "web.internal"), "web.internal", noerror(append(all, one("fdaa:0:18:1::4"))...))
	})

	t.Run("removed machine is NXDOMAIN", func(t *testing.T) {
		harness.MustMeshctl(t, ep, "machine", "rm", "cc03", "--org", "acme", "--app", "web")
		s := digUntil(t, m, deadline, "cc03.vm.web.internal NXDOMAIN", func(r *digtest.Result) bool {
			return r.Status == "NXDOMAIN"
		}, "aaaa", "cc03.vm.web.internal")
		report("rm → cc03.vm.web.internal NXDOMAIN", s)
		checkResponse(t, m.Dig(t, "aaaa", "cc03.vm.web.internal"), "cc03.vm.web.internal", nxdomain)
		checkResponse(t, m.Dig(t, "aaaa", "iad.web.internal"), "iad.web.internal", nxdomain)
		checkResponse(t, m.Dig(t, "txt", "vms.web.internal"), "vms.web.internal", txt("aa01 ams,bb02 fra,dd04 syd"))
	})
}

// TestTruncation serves an app with 3,000 started machines: over UDP the
// answer is cut to the client's size with TC set, dig retries over TCP and
// gets the nearest machines that fit in 64 KiB, without an error.
func TestTruncation(t *testing.T) {
	t.Parallel()
	m := harness.StartMeshdns(t, harness.Args("--default-org", "acme", "--region", "ams"))
	doc := registryDoc{
		Orgs: []org{{Name: "acme", Network: "fdaa:0:18::/48"}},
		Apps: []app{{Org: "acme", Name: "big"}},
	}
	regionOf := map[string]string{}
	for i, region := range []string{"ams", "fra", "syd"} {
		for n := range 1000 {
			ip := fmt.Sprintf("fdaa:0:18:b%d::%x", i, n+1)
			regionOf[ip] = region
			doc.Machines = append(doc.Machines, machine{
				Org: "acme", App: "big", ID: fmt.Sprintf("%x%04x", i+10, n), Region: region, IP: ip, State: "started",
			})
		}
	}
	load(t, m, doc)
	harness.Poll(t, 10*time.Second, 10*time.Millisecond, "3,000 machines served", func() (bool, string) {
		r := m.Query(t, "syd.big.internal", dns.TypeAAAA, harness.QueryOptions{TCP: true})
		return len(r.Answer) == 1000, fmt.Sprintf("%s, %d answers for syd.big.internal", harness.Rcode(r), len(r.Answer))
	})

	t.Run("UDP: cut to the client's size, TC set", func(t *testing.T) {
		res := m.Dig(t, "+ignore", "aaaa", "big.internal")
		if res.Status != "NOERROR" || !res.HasFlag("tc") || res.Protocol != "UDP" || res.MsgSize > 1232 {
			t.Errorf("big.internal over UDP with dig's default 1232-byte buffer: %s, flags %v, %d bytes over %s; want NOERROR, tc, at most 1232 bytes\n%s",
				res.Status, res.Flags, res.MsgSize, res.Protocol, res.Raw)
		}
		r, size := m.QuerySize(t, "big.internal", dns.TypeAAAA, harness.QueryOptions{})
		if size > 512 || !r.Truncated || len(r.Answer) == 0 {
			t.Errorf("without EDNS: %d bytes, TC %v, %d answers; want at most 512 bytes, TC and the nearest machines that fit", size, r.Truncated, len(r.Answer))
		}
		r, size = m.QuerySize(t, "big.internal", dns.TypeAAAA, harness.QueryOptions{UDPSize: 4096})
		if size > 4096 || !r.Truncated {
			t.Errorf("EDNS 4096: %d bytes, TC %v; want at most 4096 bytes and TC", size, r.Truncated)
		}
	})

	t.Run("dig retries over TCP and gets the nearest that fit in 64 KiB", func(t *testing.T) {
		res := m.Dig(t, "aaaa", "big.internal")
		if !res.RetriedTCP || res.Protocol != "TCP" {
			t.Errorf("dig did not retry over TCP (RetriedTCP %v, protocol %s)", res.RetriedTCP, res.Protocol)
		}
		if res.Status != "NOERROR" || res.HasFlag("tc") {
			t.Fatalf("over TCP: %s, flags %v; want NOERROR without tc\n%.2000s", res.Status, res.Flags, res.Raw)
		}
		checkBig(t, res, regionOf)
		t.Logf("big.internal over TCP: %d of 3000 machines in %d bytes", len(res.Answer), res.MsgSize)

		res = m.Dig(t, "+tcp", "aaaa", "big.internal")
		checkBig(t, res, regionOf)
	})

	t.Run("a TXT list longer than 64 KiB is limited, not empty", func(t *testing.T) {
		// _instances.internal lists 3,000 machines: ~165 KB, more than any
		// DNS message holds. SPEC §2: an answer that cannot fit even in
		// TCP is limited to what fits, never an error. An empty NOERROR
		// (no TXT record, no SOA) would tell a client "no instances".
		full := doc.instancesText("acme", false)
		res := m.Dig(t, "+tcp", "txt", "_instances.internal")
		if res.Status != "NOERROR" || len(res.Answer) != 1 {
			t.Fatalf("_instances.internal (%d-byte list) over TCP: %s with %d answers in %d bytes; want NOERROR with one TXT record holding the entries that fit\n%.1500s",
				len(full), res.Status, len(res.Answer), res.MsgSize, res.Raw)
		}
		got := txtText(res)
		if got == "" || !strings.HasPrefix(full, got) || len(got) < len(full) && full[len(got)] != ';' {
			t.Errorf("_instances.internal over TCP holds %d bytes that are not whole leading entries of the %d-byte list", len(got), len(full))
		}
		t.Logf("_instances.internal over TCP: %d of %d bytes of the list in a %d-byte reply", len(got), len(full), res.MsgSize)
		// A list that fits in 64 KiB comes whole.
		checkResponse(t, m.Dig(t, "txt", "vms.big.internal"), "vms.big.internal", txt(doc.vmsText("acme", "big", false)))
	})
}

// checkBig checks a TCP answer for big.internal: as many records as fit in
// zones.MaxAnswer (64,000) bytes, which every resolver accepts (Knot
// Resolver 5.6 takes at most 65,533), nearest first (all ams, all fra,
// then syd). dig reports the size it received (MSG SIZE rcvd).
func checkBig(t *testing.T, res *digtest.Result, regionOf map[string]string) {
	t.Helper()
	got := aaaaOf(res.Answer)
	if res.MsgSize > zones.MaxAnswer {
		t.Errorf("TCP reply of %d bytes, over %d", res.MsgSize, zones.MaxAnswer)
	}
	// Each further AAAA record takes 28 bytes (compressed owner, type,
	// class, TTL, length, address).
	if res.MsgSize+28 <= zones.MaxAnswer && len(got) < 3000 {
		t.Errorf("TCP reply holds %d of 3000 machines in %d bytes: another would have fit", len(got), res.MsgSize)
	}
	if len(got) < 2000 {
		t.Fatalf("TCP reply holds only %d machines", len(got))
	}
	rank := map[string]int{"ams": 0, "fra": 1, "syd": 2}
	count := map[string]int{}
	seen := map[string]bool{}
	prev := 0
	for i, ip := range got {
		r, ok := regionOf[ip]
		if !ok || seen[ip] {
			t.Fatalf("answer %d: %s is unknown or repeated", i, ip)
		}
		seen[ip] = true
		if rank[r] < prev {
			t.Fatalf("answer %d: %s in %s after a machine in a farther region: not nearest first", i, ip, r)
		}
		prev = rank[r]
		count[r]++
	}
	if count["ams"] != 1000 || count["fra"] != 1000 {
		t.Errorf("TCP reply holds %v machines per region; the 2,000 in ams and fra are nearer than any in syd and must all be there", count)
	}
}
