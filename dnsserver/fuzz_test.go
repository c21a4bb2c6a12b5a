package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandlePacket feeds raw bytes to the query path: it must never panic,
// every reply must unpack, keep the request's id, and fit the transport
// (512 bytes over UDP without EDNS, the client's EDNS size up to ours, 64 KiB
// over TCP).
func FuzzHandlePacket(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web.internal.", dns.TypeAAAA, 0},
		{"big.internal.", dns.TypeAAAA, 1232},
		{"vms.big.internal.", dns.TypeTXT, 0},
		{"_instances.internal.", dns.TypeTXT, 4096},
		{"top3.nearest.of.web.internal.", dns.TypeAAAA, 0},
		{"x.vm.web.internal.", dns.TypeANY, 0},
		{"example.com.", dns.TypeA, 0},
		{"2.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, 0},
		{"8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, 1232},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR, 0},
	} {
		m := query(q.name, q.qtype)
		if q.edns != 0 {
			m.SetEdns0(q.edns, false)
		}
		raw, _ := m.Pack()
		f.Add(raw, false)
		f.Add(raw, true)
	}
	for _, c := range []string{"0102030405060708", "01020304050607", "0102030405060708" + "0100000000000000aabbccddeeff0011"} {
		f.Add(pack(f, cookieQuery("web.internal.", c)), false)
	}
	// The protocol corners (corners_test.go): IXFR with an SOA, unknown
	// opcodes, TSIG, duplicate and misplaced OPTs.
	for _, c := range corners() {
		f.Add(c.raw(f), false)
		f.Add(c.raw(f), true)
	}
	s := newTestServer(f, testRegistry(300), "")
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		tr := UDP
		if tcp {
			tr = TCP
		}
		out := s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: tr})
		if out == nil {
			return
		}
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if len(raw) >= 2 && r.Id != uint16(raw[0])<<8|uint16(raw[1]) {
			t.Fatalf("id %d not echoed", r.Id)
		}
		limit := 65535
		if tr == UDP {
			limit = 512
			var req dns.Msg
			if req.Unpack(raw) == nil {
				if opt := req.IsEdns0(); opt != nil {
					limit = ednsBucket(int(min(max(opt.UDPSize(), 512), DefaultUDPSize)))
				}
			}
			// A request we could not parse gets a bare header.
		}
		if len(out) > limit {
			t.Fatalf("reply of %d bytes over %s exceeds %d", len(out), tr, limit)
		}
	})
}

// FuzzCachedPath feeds raw bytes to the UDP worker, which parses plain
// queries itself and answers them from its cache: every reply must agree
// with the general path's reply to the same bytes (both are asked twice,
// so the second answer of the worker comes from its cache), cookies
// included, for a UDP worker and a TCP one.
func FuzzCachedPath(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web.internal.", dns.TypeAAAA, 0},
		{"WEB.internal.", dns.TypeAAAA, 1232},
		{"vms.big.internal.", dns.TypeTXT, 0},
		{"nope.internal.", dns.TypeAAAA, 4096},
		{"internal.", dns.TypeSOA, 0},
		{"0a01.vm.web.internal.", dns.TypeANY, 0},
		{"2.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.b.7.A.0.8.1.0.0.0.0.0.0.A.a.d.f.ip6.arpa.", dns.TypePTR, 0},
		{"2.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.b.7.a.0.9.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR, 1232},
		{"a.a.d.f.ip6.arpa.", dns.TypeSOA, 0},
	} {
		m := query(q.name, q.qtype)
		if q.edns != 0 {
			m.SetEdns0(q.edns, true)
		}
		raw, _ := m.Pack()
		f.Add(raw)
	}
	// Cookies: a client's alone, with a server cookie (not ours), malformed.
	for _, c := range []string{"0102030405060708", "0102030405060708" + "0100000000000000aabbccddeeff0011", "010203"} {
		f.Add(pack(f, cookieQuery("web.internal.", c)))
	}
	for _, c := range corners() {
		f.Add(c.raw(f))
	}
	s := newTestServer(f, testRegistry(300), "")
	s.clock.close() // server cookies carry the time: both paths see the same
	w := s.newWorker()
	// A TCP worker, as connections borrow them (tcp.go).
	wt := s.newWorker()
	wt.tr = TCP
	f.Fuzz(func(t *testing.T, raw []byte) {
		for range 2 {
			for _, w := range []*worker{w, wt} {
				fast := w.handle(raw, acmeSrc, netip.Addr{})
				if w.slow {
					t.Fatal("a query to forward with no forwarder")
				}
				fast = append([]byte(nil), fast...)
				if len(fast) == 0 {
					fast = nil
				}
				sameReply(t, fast, s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: w.tr}))
			}
		}
	})
}
