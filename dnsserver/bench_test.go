package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkCachedAnswer is the hot path: a UDP query whose answer is cached.
func BenchmarkCachedAnswer(b *testing.B) {
	s := newTestServer(b, testRegistry(0), "")
	w := s.newWorker()
	raw := pack(b, query("web.internal.", dns.TypeAAAA))
	w.handle(raw, acmeSrc, netip.Addr{})
	b.ReportAllocs()
	for b.Loop() {
		w.handle(raw, acmeSrc, netip.Addr{})
	}
}

// BenchmarkCachedAnswerCookie is the hot path for a query with a client
// cookie and a valid server cookie: checked, and the reply's cookie filled
// in for this query.
func BenchmarkCachedAnswerCookie(b *testing.B) {
	s := newTestServer(b, testRegistry(0), "")
	s.clock.start() // as Start does: cookies read the coarse clock
	b.Cleanup(s.clock.close)
	w := s.newWorker()
	m := query("web.internal.", dns.TypeAAAA)
	m.SetEdns0(1232, false)
	var cookie [replyCookieLen]byte
	copy(cookie[:], "clientck")
	s.cookies.serverCookie(cookie[8:], cookie[:8], acmeSrc, s.cookieNow())
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(cookie[:])}}
	raw := pack(b, m)
	w.handle(raw, acmeSrc, netip.Addr{})
	b.ReportAllocs()
	for b.Loop() {
		w.handle(raw, acmeSrc, netip.Addr{})
	}
}

// BenchmarkUncachedAnswer is the general path: unpack, answer, pack.
func BenchmarkUncachedAnswer(b *testing.B) {
	s := newTestServer(b, testRegistry(0), "")
	raw := pack(b, query("web.internal.", dns.TypeAAAA))
	b.ReportAllocs()
	for b.Loop() {
		s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: UDP})
	}
}

// BenchmarkUncachedBigApp is the general path for an app of 10,000 started
// machines over UDP without EDNS (the reply keeps the nearest that fit in
// 512 bytes), e.g. the first answer after a change to a big app.
func BenchmarkUncachedBigApp(b *testing.B) {
	s := newTestServer(b, testRegistry(10000), "")
	raw := pack(b, query("big.internal.", dns.TypeAAAA))
	b.ReportAllocs()
	for b.Loop() {
		s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: UDP})
	}
}

// BenchmarkCachedPTR is the hot path for a reverse name: dig -x of a
// machine, answered from the cache.
func BenchmarkCachedPTR(b *testing.B) {
	s := newTestServer(b, testRegistry(0), "")
	w := s.newWorker()
	raw := pack(b, query("2.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR))
	w.handle(raw, acmeSrc, netip.Addr{})
	b.ReportAllocs()
	for b.Loop() {
		w.handle(raw, acmeSrc, netip.Addr{})
	}
}
