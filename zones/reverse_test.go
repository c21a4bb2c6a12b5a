package zones

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Reverse names (SPEC §5) as CoreDNS-style tables: question, rcode, and
// the expected records as zone-file text.

const reverseRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
machines/acme/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:18:1::1","state":"started"}
machines/acme/web/5683d9e7c01e18 {"region":"lhr","ip":"fdaa:0:18:1::2","state":"suspended"}
machines/acme/web/0dead0 {"region":"lhr","ip":"fdaa:0:18:2::1","state":"destroyed"}
machines/acme/db/d1 {"region":"ams","ip":"fdaa:0:18:3::1","state":"started","skip_registration":true}
peers/acme/laptop {"ip":"fdaa:0:18:9::1","region":"ams"}
apps/other/api {"flycast":"fdaa:0:19:0:1::5"}
machines/other/web/e784079b449483 {"region":"iad","ip":"fdaa:0:19:1::1","state":"started"}
peers/other/phone {"ip":"fdaa:0:19:9::1"}
`

func arpa(t testing.TB, addr string) string {
	t.Helper()
	r, err := dns.ReverseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const revSOA = "a.a.d.f.ip6.arpa. 60 IN SOA _api.internal. hostmaster.internal. 1735689600 3600 600 86400 60"

func TestReverseTable(t *testing.T) {
	snap := mustSnap(t, reverseRegistry)
	a := askerAt(t, snap, "fdaa:0:18:9::1")
	cfg := Config{TTL: 10, NegTTL: 60}
	for _, tc := range []struct {
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
	}{
		{arpa(t, "fdaa:0:18:1::1"), dns.TypePTR, dns.RcodeSuccess,
			[]string{arpa(t, "fdaa:0:18:1::1") + " 10 IN PTR 3d8d9e0b2ee489.vm.web.internal."}, nil},
		{arpa(t, "fdaa:0:18:1::2"), dns.TypePTR, dns.RcodeSuccess, // deployed, not started
			[]string{arpa(t, "fdaa:0:18:1::2") + " 10 IN PTR 5683d9e7c01e18.vm.web.internal."}, nil},
		{arpa(t, "fdaa:0:18:9::1"), dns.TypePTR, dns.RcodeSuccess,
			[]string{arpa(t, "fdaa:0:18:9::1") + " 10 IN PTR laptop._peer.internal."}, nil},
		{arpa(t, "fdaa:0:18::3"), dns.TypePTR, dns.RcodeSuccess,
			[]string{arpa(t, "fdaa:0:18::3") + " 10 IN PTR _api.internal."}, nil},
		{arpa(t, "fdaa:0:18:0:1::5"), dns.TypePTR, dns.RcodeSuccess,
			[]string{arpa(t, "fdaa:0:18:0:1::5") + " 10 IN PTR web.flycast."}, nil},
		{strings.ToUpper(arpa(t, "fdaa:0:18:9::1")), dns.TypePTR, dns.RcodeSuccess,
			[]string{strings.ToUpper(arpa(t, "fdaa:0:18:9::1")) + " 10 IN PTR laptop._peer.internal."}, nil},
		{arpa(t, "fdaa:0:18:9::1"), dns.TypeA, dns.RcodeSuccess, nil, []string{revSOA}},
		{arpa(t, "fdaa:0:18:9::1"), dns.TypeANY, dns.RcodeSuccess,
			[]string{arpa(t, "fdaa:0:18:9::1") + ` 10 IN HINFO "RFC8482" ""`}, nil},
		// Nobody's and other org's: one answer.
		{arpa(t, "fdaa:0:18:2::1"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}}, // destroyed
		{arpa(t, "fdaa:0:18:3::1"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}}, // skip_registration
		{arpa(t, "fdaa:0:18:9::2"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{arpa(t, "fdaa:0:19:1::1"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{arpa(t, "fdaa:0:19:9::1"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{arpa(t, "fdaa:0:19:0:1::5"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{arpa(t, "fdaa:0:19::3"), dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		// Empty non-terminals, and names with nothing below.
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, []string{revSOA}},
		{"1.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, []string{revSOA}},
		{"0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, []string{revSOA}},
		{"9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{"2.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}}, // destroyed only
		{"1.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{"z.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, nil, []string{revSOA}},
		{"a.a.d.f.ip6.arpa.", dns.TypeSOA, dns.RcodeSuccess, []string{revSOA}, nil},
		{"a.a.d.f.ip6.arpa.", dns.TypeNS, dns.RcodeSuccess, []string{"a.a.d.f.ip6.arpa. 10 IN NS _api.internal."}, nil},
		{"a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, []string{revSOA}},
	} {
		res := Answer(snap, a, question(tc.qname, tc.qtype), cfg)
		where := tc.qname + " " + dns.TypeToString[tc.qtype]
		if !res.InZone || res.Rcode != tc.rcode {
			t.Errorf("%s: inzone %v rcode %s, want %s", where, res.InZone, dns.RcodeToString[res.Rcode], dns.RcodeToString[tc.rcode])
		}
		sameRecords(t, where+" answer", res.Answer, tc.answer)
		sameRecords(t, where+" authority", res.Ns, tc.ns)
	}
}

// sameRecords compares records with zone-file text, field by field.
func sameRecords(t *testing.T, where string, got []dns.RR, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records %v, want %d %v", where, len(got), got, len(want), want)
		return
	}
	for i, w := range want {
		rr, err := dns.NewRR(w)
		if err != nil {
			t.Fatalf("%s: %q: %v", where, w, err)
		}
		if got[i].String() != rr.String() {
			t.Errorf("%s: record %d\n got %s\nwant %s", where, i, got[i], rr)
		}
	}
}

func TestSplitZoneReverse(t *testing.T) {
	for _, tc := range []struct {
		name string
		zone zone
		rest string
		apex bool
	}{
		{"a.a.d.f.ip6.arpa.", zoneReverse, "", true},
		{"A.A.D.F.IP6.ARPA", zoneReverse, "", true},
		{"1.a.a.d.f.ip6.arpa.", zoneReverse, "1", false},
		{"x.y.a.a.d.f.ip6.arpa.", zoneReverse, "x.y", false},
		{"xa.a.d.f.ip6.arpa.", zoneNone, "", false},
		{`1\.a.a.d.f.ip6.arpa.`, zoneNone, "", false},
		{"a.d.f.ip6.arpa.", zoneNone, "", false},
		{"f.ip6.arpa.", zoneNone, "", false},
		{"ip6.arpa.", zoneNone, "", false},
		{"b.a.d.f.ip6.arpa.", zoneNone, "", false},
		{"8.b.d.0.1.0.0.2.ip6.arpa.", zoneNone, "", false},
		{"a.a.d.f.in-addr.arpa.", zoneNone, "", false},
		{"a.a.d.f.ip6.arpa.internal.", zoneInternal, "a.a.d.f.ip6.arpa", false},
	} {
		z, rest, apex := splitZone(tc.name)
		if z != tc.zone || rest != tc.rest || apex != tc.apex {
			t.Errorf("splitZone(%q) = %v %q %v, want %v %q %v", tc.name, z, rest, apex, tc.zone, tc.rest, tc.apex)
		}
	}
}

func TestParseReverse(t *testing.T) {
	full := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	for _, tc := range []struct {
		rest string
		want target
	}{
		{"1", target{kind: reverseName, n: 5, ip: full("fdaa:1000::")}},
		{"F.e", target{kind: reverseName, n: 6, ip: full("fdaa:ef00::")}},
		{"8.1.0.0.0.0.0.0", target{kind: reverseName, n: 12, ip: full("fdaa:0:18::")}},
		{strings.TrimSuffix(arpa(t, "fdaa:0:18:9::1"), ".a.a.d.f.ip6.arpa."), target{kind: reverseName, n: 32, ip: full("fdaa:0:18:9::1")}},
		{"", target{}},
		{"10", target{}},
		{"1..0", target{}},
		{"1.", target{}},
		{".1", target{}},
		{"g", target{}},
		{`\.`, target{}},
		{strings.Repeat("0.", 28) + "1", target{}}, // 33 nibbles
	} {
		if got := parseReverse(tc.rest); got != tc.want {
			t.Errorf("parseReverse(%q) = %+v, want %+v", tc.rest, got, tc.want)
		}
	}
}

// TestReverseAllocs: a PTR answer costs a few allocations whatever the
// org's size, once its address index is built.
func TestReverseAllocs(t *testing.T) {
	snap := benchSnapshot(t, 1000)
	a := askerAt(t, snap, "fdaa:0:18:ffff::1")
	m := snap.Org("acme").App("web").Machines.At(500)
	if InZone(arpa(t, m.IP.String())) != true {
		t.Fatal("not in zone")
	}
	if n := testing.AllocsPerRun(100, func() { InZone("0.0.0.1.A.A.D.F.IP6.ARPA.") }); n != 0 {
		t.Errorf("InZone allocates %v times for a reverse name", n)
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		max   float64
	}{
		{arpa(t, m.IP.String()), dns.TypePTR, 5},
		{arpa(t, "fdaa:0:18:ffff::77"), dns.TypePTR, 2},
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, 2},
	} {
		q := question(tc.name, tc.qtype)
		Answer(snap, a, q, Config{}) // builds the index
		if n := testing.AllocsPerRun(50, func() { Answer(snap, a, q, Config{}) }); n > tc.max {
			t.Errorf("%s: %v allocations, want ≤ %v", tc.name, n, tc.max)
		}
	}
}
