package dnsserver

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// Reverse names (SPEC §5) through the server: routed to zones on every
// path, cached org-wide, and answering another org's address exactly as
// an address nobody holds.

const reverseRegistry = `orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/acme/web/0a02 {"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"stopped"}
machines/acme/ip6/0c01 {"region":"ams","ip":"fdaa:0:18:c::1","state":"started"}
peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
apps/other/web {"flycast":"fdaa:0:19:0:1::5"}
machines/other/web/0b01 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}
peers/other/bob {"ip":"fdaa:0:19:a7b:9::2"}
`

func rev(t testing.TB, addr string) string {
	t.Helper()
	r, err := dns.ReverseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReverseNames asks PTR and the zone apex through the general UDP
// path, the cached path (miss and hit) and TCP.
func TestReverseNames(t *testing.T) {
	s := newTestServer(t, reverseRegistry, "")
	w := s.newWorker()
	src := acmeSrc
	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string // PTR target or SOA/NS data, "" for none
	}{
		{rev(t, "fdaa:0:18:a7b:1::2"), dns.TypePTR, dns.RcodeSuccess, "0a01.vm.web.internal."},
		{rev(t, "fdaa:0:18:a7b:1::3"), dns.TypePTR, dns.RcodeSuccess, "0a02.vm.web.internal."},
		{rev(t, "fdaa:0:18:c::1"), dns.TypePTR, dns.RcodeSuccess, "0c01.vm.ip6.internal."},
		{rev(t, "fdaa:0:18:a7b:9::2"), dns.TypePTR, dns.RcodeSuccess, "alice._peer.internal."},
		{rev(t, "fdaa:0:18::3"), dns.TypePTR, dns.RcodeSuccess, "_api.internal."},
		{rev(t, "fdaa:0:18:0:1::5"), dns.TypePTR, dns.RcodeSuccess, "web.flycast."},
		{rev(t, "fdaa:0:18:a7b:1::2"), dns.TypeAAAA, dns.RcodeSuccess, ""},
		{rev(t, "fdaa:0:18:a7b:1::99"), dns.TypePTR, dns.RcodeNameError, ""},
		{rev(t, "fdaa:0:19:a7b:1::2"), dns.TypePTR, dns.RcodeNameError, ""},
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, ""},
		{"9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, ""},
		{"a.a.d.f.ip6.arpa.", dns.TypeNS, dns.RcodeSuccess, "_api.internal."},
		{"A.a.D.f.IP6.arpa.", dns.TypeSOA, dns.RcodeSuccess, "_api.internal."},
	} {
		raw := pack(t, query(tc.name, tc.qtype))
		for _, path := range []string{"general", "cached miss", "cached hit", "tcp"} {
			var out []byte
			switch path {
			case "general":
				out = s.HandlePacket(Query{Raw: raw, Src: src, Transport: UDP})
			case "tcp":
				out = s.HandlePacket(Query{Raw: raw, Src: src, Transport: TCP})
			default:
				out = w.handle(raw, src, netip.Addr{})
			}
			var m dns.Msg
			if err := m.Unpack(out); err != nil {
				t.Fatalf("%s %s %s: %v", path, tc.name, dns.TypeToString[tc.qtype], err)
			}
			got := ""
			if len(m.Answer) == 1 {
				switch rr := m.Answer[0].(type) {
				case *dns.PTR:
					got = rr.Ptr
				case *dns.NS:
					got = rr.Ns
				case *dns.SOA:
					got = rr.Ns
				}
			}
			if m.Rcode != tc.rcode || got != tc.answer || !m.Authoritative || len(m.Answer) > 1 ||
				len(m.Answer) == 0 && (len(m.Ns) != 1 || m.Ns[0].Header().Name != "a.a.d.f.ip6.arpa.") {
				t.Errorf("%s %s %s: %s", path, tc.name, dns.TypeToString[tc.qtype], show(out))
			}
			if len(m.Answer) == 1 && m.Answer[0].Header().Name != tc.name {
				t.Errorf("%s %s: owner %q does not echo the question", path, tc.name, m.Answer[0].Header().Name)
			}
		}
	}
	// A source in no org, and names in ip6.arpa outside fdaa::/16 (no
	// forwarder): REFUSED, as before.
	for _, tc := range []struct {
		name string
		src  netip.Addr
	}{
		{rev(t, "fdaa:0:18:a7b:1::2"), noOrgSrc},
		{rev(t, "2001:db8::1"), acmeSrc},
		{"f.ip6.arpa.", acmeSrc},
	} {
		raw := pack(t, query(tc.name, dns.TypePTR))
		for i, out := range [][]byte{s.HandlePacket(Query{Raw: raw, Src: tc.src, Transport: UDP}), w.handle(raw, tc.src, netip.Addr{})} {
			var m dns.Msg
			if err := m.Unpack(out); err != nil || m.Rcode != dns.RcodeRefused || m.Authoritative || len(m.Answer)+len(m.Ns) != 0 {
				t.Errorf("%s from %s (path %d): want a bare REFUSED, got %s", tc.name, tc.src, i, show(out))
			}
		}
	}
}

// TestReverseCacheInvalidation: a cached PTR answer follows the registry
// at once through the warm cache of the fast path. The answers are
// org-wide: app "ip6" (the label the fast path takes for an app in
// <nibbles>.ip6.arpa) changing must not be what decides, nor stay what
// keeps an answer.
func TestReverseCacheInvalidation(t *testing.T) {
	s := newTestServer(t, reverseRegistry, "")
	obs := &countingObserver{}
	cfg := *s.cfg.Load()
	cfg.Observer = obs
	s.Reconfigure(cfg)
	w := s.newWorker()
	ptr := func(addr string) string {
		t.Helper()
		m := answers(t, w, rev(t, addr), dns.TypePTR, acmeSrc)
		if len(m.Answer) != 1 {
			return dns.RcodeToString[m.Rcode]
		}
		return m.Answer[0].(*dns.PTR).Ptr
	}
	for range 2 {
		if got := ptr("fdaa:0:18:a7b:1::2"); got != "0a01.vm.web.internal." {
			t.Fatalf("0a01: %s", got)
		}
		if got := ptr("fdaa:0:18:a7b:9::2"); got != "alice._peer.internal." {
			t.Fatalf("alice: %s", got)
		}
		if got := ptr("fdaa:0:18:a7b:1::7"); got != "NXDOMAIN" {
			t.Fatalf("unused: %s", got)
		}
	}
	if obs.hits != 3 {
		t.Fatalf("%d cache hits, want 3", obs.hits)
	}
	// web's machine goes (app ip6 unchanged); alice moves; a new machine
	// takes the unused address.
	applyText(t, s.store, `machines/acme/web/0a01 DELETE
peers/acme/alice {"ip":"fdaa:0:18:a7b:9::3"}
machines/acme/api/0d01 {"region":"ams","ip":"fdaa:0:18:a7b:1::7","state":"started"}`)
	for _, tc := range [][2]string{
		{"fdaa:0:18:a7b:1::2", "NXDOMAIN"},
		{"fdaa:0:18:a7b:9::2", "NXDOMAIN"},
		{"fdaa:0:18:a7b:9::3", "alice._peer.internal."},
		{"fdaa:0:18:a7b:1::7", "0d01.vm.api.internal."},
	} {
		if got := ptr(tc[0]); got != tc[1] {
			t.Errorf("after the change, PTR %s: %s, want %s", tc[0], got, tc[1])
		}
	}
	// Another org's change leaves acme's cached answers cached.
	ptr("fdaa:0:18:a7b:1::7")
	h := obs.hits
	applyText(t, s.store, `machines/other/web/0b02 {"region":"ams","ip":"fdaa:0:19:a7b:1::3","state":"started"}`)
	ptr("fdaa:0:18:a7b:1::7")
	if obs.hits != h+1 {
		t.Error("a change in another org dropped acme's cached PTR answer")
	}
}

// TestReverseOtherOrgLikeNobody: the reply to a PTR query for another
// org's address — machine, peer, flycast, <network>::3, its /48 — is
// byte for byte the reply for the same name when nobody holds it (the
// other org removed from the registry), apart from the message id, on
// every path; and the reply for an address nobody holds differs from it
// only in the question's own bytes.
func TestReverseOtherOrgLikeNobody(t *testing.T) {
	with := newTestServer(t, reverseRegistry, "")
	without := newTestServer(t, `orgs/acme {"network":"fdaa:0:18::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/acme/web/0a02 {"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"stopped"}
machines/acme/ip6/0c01 {"region":"ams","ip":"fdaa:0:18:c::1","state":"started"}
peers/acme/alice {"ip":"fdaa:0:18:a7b:9::2"}
`, "")
	ww, wo := with.newWorker(), without.newWorker()
	names := []string{
		rev(t, "fdaa:0:19:a7b:1::2"), rev(t, "fdaa:0:19:a7b:9::2"), rev(t, "fdaa:0:19:0:1::5"), rev(t, "fdaa:0:19::3"),
		"9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", "b.7.a.0.9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.",
	}
	for _, name := range names {
		for _, qt := range []uint16{dns.TypePTR, dns.TypeANY, dns.TypeAAAA} {
			m := query(name, qt)
			m.Id = 1111
			a := pack(t, m)
			m.Id = 2222
			b := pack(t, m)
			for _, tr := range []Transport{UDP, TCP} {
				x := with.HandlePacket(Query{Raw: a, Src: acmeSrc, Transport: tr})
				y := without.HandlePacket(Query{Raw: b, Src: acmeSrc, Transport: tr})
				// Not vacuously equal: an authoritative NXDOMAIN with the SOA.
				var r dns.Msg
				if err := r.Unpack(x); err != nil || r.Rcode != dns.RcodeNameError || !r.Authoritative || len(r.Ns) != 1 {
					t.Errorf("%s %s over %s: want an authoritative NXDOMAIN with the SOA, got %s", name, dns.TypeToString[qt], tr, show(x))
				}
				if !sameButID(x, y) {
					t.Errorf("%s %s over %s: another org's\n%x\nnobody's\n%x", name, dns.TypeToString[qt], tr, x, y)
				}
			}
			for range 2 { // cached path: miss, then hit
				x := bytes.Clone(ww.handle(a, acmeSrc, netip.Addr{}))
				y := bytes.Clone(wo.handle(b, acmeSrc, netip.Addr{}))
				if !sameButID(x, y) {
					t.Errorf("%s %s, cached path: another org's\n%x\nnobody's\n%x", name, dns.TypeToString[qt], x, y)
				}
			}
		}
	}
	// Another org's address against an unused one in the same registry:
	// the same reply but for the question's nibbles.
	for _, pair := range [][2]string{
		{"fdaa:0:19:a7b:1::2", "fdaa:0:19:a7b:1::99"},
		{"fdaa:0:19:a7b:1::2", "fdaa:0:77:a7b:1::2"},
		{"fdaa:0:19::3", "fdaa:0:18:a7b:1::99"},
	} {
		qa, qb := query(rev(t, pair[0]), dns.TypePTR), query(rev(t, pair[1]), dns.TypePTR)
		qa.Id, qb.Id = 7, 8
		x := with.HandlePacket(Query{Raw: pack(t, qa), Src: acmeSrc, Transport: UDP})
		y := with.HandlePacket(Query{Raw: pack(t, qb), Src: acmeSrc, Transport: UDP})
		if r := new(dns.Msg); r.Unpack(x) != nil || r.Rcode != dns.RcodeNameError || !r.Authoritative {
			t.Errorf("PTR %s: want an authoritative NXDOMAIN, got %s", pair[0], show(x))
		}
		qEnd := 12 + len(rev(t, pair[0])) + 1
		if len(x) != len(y) || len(x) < qEnd || !bytes.Equal(x[2:12], y[2:12]) || !bytes.Equal(x[qEnd:], y[qEnd:]) {
			t.Errorf("PTR %s (another org's) and %s (nobody's) differ beyond the id and question:\n%s\n%s", pair[0], pair[1], show(x), show(y))
		}
	}
}

// sameButID reports whether two replies are the same bytes but for the
// message id.
func sameButID(x, y []byte) bool {
	return len(x) >= 12 && len(x) == len(y) && bytes.Equal(x[2:], y[2:])
}
