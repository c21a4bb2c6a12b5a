package zones

import (
	"testing"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// Behaviour around the golden files: class, nil inputs, defaults.

func TestAnswerClass(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	a := askerAt(t, snap, "fdaa:0:18:1::1")
	for _, tc := range []struct {
		class uint16
		rcode int
	}{
		{dns.ClassINET, dns.RcodeSuccess},
		{dns.ClassANY, dns.RcodeSuccess},
		{0, dns.RcodeSuccess}, // a question built by hand
		{dns.ClassCHAOS, dns.RcodeRefused},
		{dns.ClassHESIOD, dns.RcodeRefused},
	} {
		res := Answer(snap, a, dns.Question{Name: "web.internal.", Qtype: dns.TypeAAAA, Qclass: tc.class}, Config{})
		if res.Rcode != tc.rcode || !res.InZone {
			t.Errorf("class %d: rcode %d inzone %v, want %d", tc.class, res.Rcode, res.InZone, tc.rcode)
		}
	}
}

func TestAnswerNilOrg(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	res := Answer(snap, Asker{}, question("web.internal.", dns.TypeAAAA), Config{})
	if res.Rcode != dns.RcodeRefused || !res.InZone || res.Answer != nil || res.Ns != nil {
		t.Errorf("nil org: %+v", res)
	}
	res = Answer(snap, Asker{}, question("example.com.", dns.TypeAAAA), Config{})
	if res.InZone {
		t.Errorf("example.com in zone: %+v", res)
	}
}

// TestAnswerNilSnapshot: the region table comes from the snapshot; without
// one the built-in table still orders the answer.
func TestAnswerNilSnapshot(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	a := askerAt(t, snap, "fdaa:0:18:9::1")
	want := addrs(Answer(snap, a, question("web.internal.", dns.TypeAAAA), Config{}).Answer)
	got := addrs(Answer(nil, a, question("web.internal.", dns.TypeAAAA), Config{}).Answer)
	if len(got) != 8 || got[0] != want[0] || got[7] != want[7] {
		t.Errorf("nil snapshot: %v, want %v", got, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	a := askerAt(t, snap, "fdaa:0:18:1::1")
	for _, tc := range []struct {
		cfg         Config
		pos, neg    uint32
		description string
	}{
		{Config{}, 5, 5, "zero config"},
		{Config{TTL: 30}, 30, 30, "negative TTL follows TTL"},
		{Config{TTL: 30, NegTTL: 2}, 30, 2, "both set"},
		{Config{NegTTL: 60}, 5, 60, "only the negative TTL"},
	} {
		pos := Answer(snap, a, question("web.internal.", dns.TypeAAAA), tc.cfg)
		neg := Answer(snap, a, question("nosuch.internal.", dns.TypeAAAA), tc.cfg)
		if pos.Answer[0].Header().Ttl != tc.pos {
			t.Errorf("%s: positive TTL %d, want %d", tc.description, pos.Answer[0].Header().Ttl, tc.pos)
		}
		s := neg.Ns[0].(*dns.SOA)
		if s.Hdr.Ttl != tc.neg || s.Minttl != tc.neg {
			t.Errorf("%s: SOA TTL %d minimum %d, want %d", tc.description, s.Hdr.Ttl, s.Minttl, tc.neg)
		}
	}
}

func TestAskerRegion(t *testing.T) {
	m := &registry.Machine{Region: "ams"}
	p := &registry.Peer{}
	cfg := Config{ServerRegion: "fra"}
	for _, tc := range []struct {
		a    Asker
		want string
	}{
		{Asker{Owner: registry.Owner{Machine: m}}, "ams"},
		{Asker{Owner: registry.Owner{Peer: p}}, "fra"},
		{Asker{}, "fra"},
	} {
		if got := tc.a.Region(cfg); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.a, got, tc.want)
		}
	}
	if got := (Asker{}).Region(Config{}); got != "" {
		t.Errorf("no region anywhere: %q", got)
	}
}

// TestAnswerNotFQDN: a name without the trailing dot is matched the same
// way (dnsserver always passes fully qualified names; this is for callers
// that build questions by hand).
func TestAnswerNotFQDN(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	a := askerAt(t, snap, "fdaa:0:18:1::1")
	res := Answer(snap, a, question("web.internal", dns.TypeAAAA), Config{})
	if res.Rcode != dns.RcodeSuccess || len(res.Answer) != 2 || res.Answer[0].Header().Name != "web.internal" {
		t.Errorf("%+v", res)
	}
}

// TestAnswerEscapes: names in presentation format with escapes never match
// a registered name, and an escaped dot is not a label boundary.
func TestAnswerEscapes(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	a := askerAt(t, snap, "fdaa:0:18:1::1")
	for _, tc := range []struct {
		name   string
		inZone bool
		rcode  int
	}{
		{`web\.internal.`, false, 0},
		{`we\098.internal.`, true, dns.RcodeNameError},
		{`a\.vm.web.internal.`, true, dns.RcodeNameError},
		{`\\.internal.`, true, dns.RcodeNameError},
		{`web\000.internal.`, true, dns.RcodeNameError},
	} {
		res := Answer(snap, a, question(tc.name, dns.TypeAAAA), Config{})
		if res.InZone != tc.inZone || (tc.inZone && res.Rcode != tc.rcode) {
			t.Errorf("%s: inzone %v rcode %d, want %v %d", tc.name, res.InZone, res.Rcode, tc.inZone, tc.rcode)
		}
	}
}

// TestAnswerAllocs keeps the per-query allocation count in check: it must
// not grow with the number of machines.
func TestAnswerAllocs(t *testing.T) {
	snap := benchSnapshot(t, 1000)
	a := askerAt(t, snap, "fdaa:0:18:ffff::1")
	for _, tc := range []struct {
		name  string
		qtype uint16
		max   float64
	}{
		{"web.internal.", dns.TypeAAAA, 5},
		{"top3.nearest.of.web.internal.", dns.TypeAAAA, 5},
		{"vms.web.internal.", dns.TypeTXT, 5},
		{"nosuch.internal.", dns.TypeAAAA, 2},
		{"ams.web.internal.", dns.TypeA, 2},
		{"3d8d.vm.web.internal.", dns.TypeAAAA, 2},
	} {
		q := question(tc.name, tc.qtype)
		n := testing.AllocsPerRun(20, func() { Answer(snap, a, q, Config{}) })
		if n > tc.max {
			t.Errorf("%s %s: %v allocations, want ≤ %v", tc.name, dns.TypeToString[tc.qtype], n, tc.max)
		}
	}
}

// TestAnswerZeroAsker: an asker with an org but no address or owner still
// gets an answer (hash order from the zero address, no region).
func TestAnswerZeroAsker(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	a := Asker{Org: snap.Org("acme")}
	for _, name := range []string{"web.internal.", "_whoami.internal.", "top2.nearest.of.web.internal."} {
		res := Answer(snap, a, question(name, dns.TypeAAAA), Config{})
		if !res.InZone || res.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: %+v", name, res)
		}
	}
	res := Answer(snap, a, question("_whoami.internal.", dns.TypeTXT), Config{})
	if got := res.Answer[0].(*dns.TXT).Txt[0]; got != "org=acme,ip=" {
		t.Errorf("_whoami: %q", got)
	}
}
