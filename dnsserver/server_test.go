package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// testRegistry has one org with an app of a few machines and an app large
// enough that its AAAA answer does not fit in 512 bytes or in 64 KiB.
func testRegistry(bigApp int) string {
	var b strings.Builder
	b.WriteString(`orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"started"}
machines/other/secret/0b01 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}
`)
	for i := range bigApp {
		fmt.Fprintf(&b, "machines/acme/big/%04x {\"region\":\"ams\",\"ip\":\"fdaa:0:18:b::%x\",\"state\":\"started\"}\n", i+1, i+1)
	}
	return b.String()
}

func newTestServer(t testing.TB, reg string, defaultOrg string) *Server {
	t.Helper()
	s := registry.NewStore(registry.DefaultPrefix)
	if reg != "" {
		evs, err := registry.ParseText(registry.DefaultPrefix, reg)
		if err != nil {
			t.Fatal(err)
		}
		s.Replace(int64(len(evs)), evs)
	}
	return New(Config{Listen: []string{"127.0.0.1:0"}, DefaultOrg: defaultOrg, Zones: zones.Config{TTL: 5, NegTTL: 5, ServerRegion: "ams"}}, s)
}

var (
	acmeSrc  = netip.MustParseAddr("fdaa:0:18:a7b:1::2")
	otherSrc = netip.MustParseAddr("fdaa:0:19:a7b:1::2")
	noOrgSrc = netip.MustParseAddr("::1")
)

func exchange(t testing.TB, s *Server, m *dns.Msg, src netip.Addr, tr Transport) (*dns.Msg, int) {
	t.Helper()
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := s.HandlePacket(Query{Raw: raw, Src: src, Transport: tr})
	if out == nil {
		return nil, 0
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return r, len(out)
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestRcodes(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	tests := []struct {
		name  string
		msg   func() *dns.Msg
		src   netip.Addr
		rcode int
		aa    bool
	}{
		{"answer", func() *dns.Msg { return query("web.internal.", dns.TypeAAAA) }, acmeSrc, dns.RcodeSuccess, true},
		{"nxdomain", func() *dns.Msg { return query("nope.internal.", dns.TypeAAAA) }, acmeSrc, dns.RcodeNameError, true},
		{"other org's app is nxdomain", func() *dns.Msg { return query("secret.internal.", dns.TypeAAAA) }, acmeSrc, dns.RcodeNameError, true},
		{"no org refused", func() *dns.Msg { return query("web.internal.", dns.TypeAAAA) }, noOrgSrc, dns.RcodeRefused, false},
		{"outside zone refused", func() *dns.Msg { return query("example.com.", dns.TypeA) }, acmeSrc, dns.RcodeRefused, false},
		{"notify is notimp", func() *dns.Msg {
			m := query("web.internal.", dns.TypeSOA)
			m.Opcode = dns.OpcodeNotify
			return m
		}, acmeSrc, dns.RcodeNotImplemented, false},
		{"update is notimp", func() *dns.Msg {
			m := query("web.internal.", dns.TypeSOA)
			m.Opcode = dns.OpcodeUpdate
			return m
		}, acmeSrc, dns.RcodeNotImplemented, false},
		{"two questions formerr", func() *dns.Msg {
			m := query("web.internal.", dns.TypeAAAA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, acmeSrc, dns.RcodeFormatError, false},
		{"no question formerr", func() *dns.Msg {
			m := query("web.internal.", dns.TypeAAAA)
			m.Question = nil
			return m
		}, acmeSrc, dns.RcodeFormatError, false},
		{"chaos class notimp", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, acmeSrc, dns.RcodeNotImplemented, false},
		{"axfr refused", func() *dns.Msg { return query("internal.", dns.TypeAXFR) }, acmeSrc, dns.RcodeRefused, false},
	}
	for _, tc := range tests {
		for _, tr := range []Transport{UDP, TCP} {
			t.Run(tc.name+"/"+tr.String(), func(t *testing.T) {
				m := tc.msg()
				r, _ := exchange(t, s, m, tc.src, tr)
				if r == nil {
					t.Fatal("no reply")
				}
				if r.Rcode != tc.rcode || r.Authoritative != tc.aa || r.Id != m.Id || !r.Response {
					t.Fatalf("got rcode %s aa=%v id=%d qr=%v, want %s aa=%v id=%d", dns.RcodeToString[r.Rcode], r.Authoritative, r.Id, r.Response,
						dns.RcodeToString[tc.rcode], tc.aa, m.Id)
				}
			})
		}
	}
}

func TestServfailBeforeFirstLoad(t *testing.T) {
	s := newTestServer(t, "", "acme")
	r, _ := exchange(t, s, query("web.internal.", dns.TypeAAAA), acmeSrc, UDP)
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL before the registry is loaded", dns.RcodeToString[r.Rcode])
	}
}

func TestDefaultOrg(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme")
	r, _ := exchange(t, s, query("web.internal.", dns.TypeAAAA), noOrgSrc, UDP)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("default org asker: %v", r)
	}
	// A source inside another org's network stays in that org.
	r, _ = exchange(t, s, query("web.internal.", dns.TypeAAAA), otherSrc, UDP)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("other org asker got %s for acme's app", dns.RcodeToString[r.Rcode])
	}
}

func TestEDNS(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	t.Run("version 1 is BADVERS", func(t *testing.T) {
		m := query("web.internal.", dns.TypeAAAA)
		m.SetEdns0(4096, false)
		m.IsEdns0().SetVersion(1)
		r, _ := exchange(t, s, m, acmeSrc, UDP)
		opt := r.IsEdns0()
		if r.Rcode != dns.RcodeBadVers || opt == nil || opt.Version() != 0 || len(r.Answer) != 0 {
			t.Fatalf("got %v", r)
		}
	})
	t.Run("options not echoed, our size advertised", func(t *testing.T) {
		m := query("web.internal.", dns.TypeAAAA)
		m.SetEdns0(4096, true)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
			&dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		r, _ := exchange(t, s, m, acmeSrc, UDP)
		ropt := r.IsEdns0()
		// Only the COOKIE is answered (cookie_test.go), with the client's
		// cookie and ours.
		if ropt == nil || len(ropt.Option) != 1 || ropt.UDPSize() != DefaultUDPSize || !ropt.Do() || ropt.Version() != 0 {
			t.Fatalf("reply OPT %v", ropt)
		}
		if c, ok := ropt.Option[0].(*dns.EDNS0_COOKIE); !ok || len(c.Cookie) != 48 || c.Cookie[:16] != "0102030405060708" {
			t.Fatalf("reply OPT %v: want our cookie after the client's", ropt)
		}
	})
	t.Run("no EDNS, no OPT", func(t *testing.T) {
		r, _ := exchange(t, s, query("web.internal.", dns.TypeAAAA), acmeSrc, UDP)
		if r.IsEdns0() != nil {
			t.Fatal("OPT in reply to a query without EDNS")
		}
	})
}

func TestTruncation(t *testing.T) {
	s := newTestServer(t, testRegistry(3000), "")
	for _, tc := range []struct {
		name    string
		edns    uint16
		tr      Transport
		limit   int
		wantTC  bool
		minRecs int
	}{
		{"udp no edns", 0, UDP, 512, true, 1},
		{"udp edns 1232", 1232, UDP, 1232, true, 10},
		{"udp edns 4096 capped to ours", 4096, UDP, DefaultUDPSize, true, 10},
		{"udp edns below 512 counts as 512", 100, UDP, 512, true, 1},
		{"tcp 64k nearest that fit", 0, TCP, zones.MaxAnswer, false, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := query("big.internal.", dns.TypeAAAA)
			if tc.edns != 0 {
				m.SetEdns0(tc.edns, false)
			}
			r, n := exchange(t, s, m, acmeSrc, tc.tr)
			if n > tc.limit {
				t.Fatalf("reply of %d bytes exceeds %d", n, tc.limit)
			}
			if r.Truncated != tc.wantTC || r.Rcode != dns.RcodeSuccess || len(r.Answer) < tc.minRecs {
				t.Fatalf("tc=%v rcode=%s answers=%d (size %d)", r.Truncated, dns.RcodeToString[r.Rcode], len(r.Answer), n)
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	for _, tc := range []struct {
		name  string
		raw   []byte
		reply bool
		rcode int
	}{
		{"empty", nil, false, 0},
		{"short header", []byte{1, 2, 3}, false, 0},
		{"response bit set", []byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false, 0},
		{"header claims a question that is missing", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, true, dns.RcodeFormatError},
		{"pointer loop", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 28, 0, 1}, true, dns.RcodeFormatError},
		{"label over 63", append([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64}, make([]byte, 64)...), true, dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := s.HandlePacket(Query{Raw: tc.raw, Src: acmeSrc, Transport: UDP})
			if (out != nil) != tc.reply {
				t.Fatalf("reply %x, want reply=%v", out, tc.reply)
			}
			if out == nil {
				return
			}
			if len(out) > max(len(tc.raw), 12) {
				t.Fatalf("reply of %d bytes to a %d-byte request", len(out), len(tc.raw))
			}
			var r dns.Msg
			if err := r.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode || r.Id != 1 || !r.Response {
				t.Fatalf("got %v", &r)
			}
		})
	}
}

func TestQuestionCaseEchoed(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	r, _ := exchange(t, s, query("WeB.InTeRnAl.", dns.TypeAAAA), acmeSrc, UDP)
	if r.Question[0].Name != "WeB.InTeRnAl." || len(r.Answer) != 2 || r.Answer[0].Header().Name != "WeB.InTeRnAl." {
		t.Fatalf("case not echoed: %v", r)
	}
}

func TestRefusedAtAnotherOrgsDNSAddress(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	acmeDNS := netip.MustParseAddr("fdaa:0:18::3")
	otherDNS := netip.MustParseAddr("fdaa:0:19::3")
	meshDNS := netip.MustParseAddr("fdaa::3")
	w := s.newWorker()
	for _, tc := range []struct {
		src, dst netip.Addr
		rcode    int
	}{
		{acmeSrc, acmeDNS, dns.RcodeSuccess},
		{acmeSrc, meshDNS, dns.RcodeSuccess},
		{acmeSrc, otherDNS, dns.RcodeRefused},
		{otherSrc, acmeDNS, dns.RcodeRefused},
		{otherSrc, otherDNS, dns.RcodeNameError}, // web is acme's
	} {
		raw := pack(t, query("web.internal.", dns.TypeAAAA))
		for _, out := range [][]byte{
			s.HandlePacket(Query{Raw: raw, Src: tc.src, Dst: tc.dst, Transport: UDP}),
			w.handle(raw, tc.src, tc.dst),
			w.handle(raw, tc.src, tc.dst), // cached
		} {
			var r dns.Msg
			if err := r.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode {
				t.Fatalf("%s asking at %s: %s, want %s", tc.src, tc.dst, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
		}
	}
}
