package dnsserver

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// TestSipHash checks SipHash-2-4 against the reference vectors of its
// paper (key 00..0f, messages 00..n-1).
func TestSipHash(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k := cookieSecretFrom(key)
	msg := make([]byte, 16)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, want := range map[int]uint64{0: 0x726fdb47dd0e0e31, 7: 0xab0200f58b01d137, 8: 0x93f5f5799a932462, 15: 0xa129ca6149be45e5} {
		if got := siphash24(k.k0, k.k1, msg[:n]); got != want {
			t.Errorf("siphash of %d bytes: %x, want %x", n, got, want)
		}
	}
}

// TestServerCookieRFC9018 checks the server cookie against RFC 9018's
// appendix A.1, so that servers sharing a secret interoperate.
func TestServerCookieRFC9018(t *testing.T) {
	var key [16]byte
	hex.Decode(key[:], []byte("e5e973e5a6b2a43f48e7dc849e37bfcf"))
	k := cookieSecretFrom(key)
	cc, _ := hex.DecodeString("2464c4abcf10c957")
	var sc [serverCookieLen]byte
	k.serverCookie(sc[:], cc, netip.MustParseAddr("198.51.100.100"), 1559731985)
	if got := hex.EncodeToString(sc[:]); got != "010000005cf79f111f8130c3eee29480" {
		t.Fatalf("server cookie %s, want RFC 9018's 010000005cf79f111f8130c3eee29480", got)
	}
	opt := append(cc, sc[:]...)
	for _, tc := range []struct {
		now          uint32
		src          string
		valid, fresh bool
	}{
		{1559731985, "198.51.100.100", true, true},
		{1559731985 + 1800, "198.51.100.100", true, true},
		{1559731985 + 1801, "198.51.100.100", true, false},
		{1559731985 + 3600, "198.51.100.100", true, false},
		{1559731985 + 3601, "198.51.100.100", false, false},
		{1559731985 - 300, "198.51.100.100", true, true},
		{1559731985 - 301, "198.51.100.100", false, false},
		{1559731985, "198.51.100.101", false, false},
		{1559731985, "::ffff:198.51.100.100", true, true},
	} {
		valid, fresh := k.check(opt, netip.MustParseAddr(tc.src), tc.now)
		if valid != tc.valid || fresh != tc.fresh {
			t.Errorf("at %d from %s: valid %v fresh %v, want %v %v", tc.now, tc.src, valid, fresh, tc.valid, tc.fresh)
		}
	}
}

// cookieQuery is name AAAA with EDNS and a COOKIE option of the given hex.
func cookieQuery(name, cookie string) *dns.Msg {
	m := query(name, dns.TypeAAAA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
	return m
}

func replyCookie(t *testing.T, r *dns.Msg) string {
	t.Helper()
	opt := r.IsEdns0()
	if opt == nil || len(opt.Option) != 1 {
		t.Fatalf("want one COOKIE option in %v", r)
	}
	c, ok := opt.Option[0].(*dns.EDNS0_COOKIE)
	if !ok || len(c.Cookie) != 2*replyCookieLen {
		t.Fatalf("want a 24-byte COOKIE in %v", r)
	}
	return c.Cookie
}

// TestCookies: a client cookie gets a server cookie back; the server cookie
// sent back is accepted (returned as it is); a tampered or foreign one is
// replaced; a malformed COOKIE option gets FORMERR; and the cached path
// answers each client with its own cookie, in the cached and general paths
// alike.
func TestCookies(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	s.clock.close() // frozen time: both paths see the same second
	w := s.newWorker()
	paths := map[string]func(m *dns.Msg, src netip.Addr) *dns.Msg{
		"cached": func(m *dns.Msg, src netip.Addr) *dns.Msg {
			out := w.handle(pack(t, m), src, netip.Addr{})
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatalf("reply does not unpack: %v", err)
			}
			return r
		},
		"general": func(m *dns.Msg, src netip.Addr) *dns.Msg {
			r, _ := exchange(t, s, m, src, UDP)
			return r
		},
	}
	const cc1, cc2 = "0102030405060708", "a1a2a3a4a5a6a7a8"
	for name, ask := range paths {
		t.Run(name, func(t *testing.T) {
			r := ask(cookieQuery("web.internal.", cc1), acmeSrc)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
				t.Fatalf("client cookie only: %v", r)
			}
			c1 := replyCookie(t, r)
			if c1[:16] != cc1 || c1[16:18] != "01" || c1[18:24] != "000000" {
				t.Fatalf("cookie %s: want the client cookie, then a version 1 server cookie", c1)
			}
			// Another client, same name: its own cookie, never the first's.
			c2 := replyCookie(t, ask(cookieQuery("web.internal.", cc2), acmeSrc))
			if c2[:16] != cc2 || c2[16:] == c1[16:] {
				t.Fatalf("second client got %s after the first got %s", c2, c1)
			}
			// The same client from another address gets another server cookie.
			other := netip.MustParseAddr("fdaa:0:18:a7b:1::3")
			if c := replyCookie(t, ask(cookieQuery("web.internal.", cc1), other)); c[16:] == c1[16:] {
				t.Fatalf("server cookie %s does not depend on the client's address", c)
			}
			// Sending the server cookie back: accepted and returned as is.
			if c := replyCookie(t, ask(cookieQuery("web.internal.", c1), acmeSrc)); c != c1 {
				t.Fatalf("valid server cookie sent back, got %s, want %s", c, c1)
			}
			if !s.verifiedSource(pack(t, cookieQuery("web.internal.", c1)), acmeSrc) {
				t.Fatal("a query with our server cookie is not taken as verified")
			}
			// Tampered, or from another server (8 to 32 bytes): a new one.
			tampered := c1[:len(c1)-2] + "00"
			if tampered == c1 {
				tampered = c1[:len(c1)-2] + "01"
			}
			for _, sent := range []string{tampered, cc1 + "0011223344556677", cc1 + strings.Repeat("ab", 32)} {
				r := ask(cookieQuery("web.internal.", sent), acmeSrc)
				if c := replyCookie(t, r); r.Rcode != dns.RcodeSuccess || c != c1 {
					t.Fatalf("sent %s: rcode %s cookie %s, want an answer with a new server cookie %s", sent, dns.RcodeToString[r.Rcode], c, c1)
				}
				if s.verifiedSource(pack(t, cookieQuery("web.internal.", sent)), acmeSrc) {
					t.Fatalf("server cookie %s taken as verified", sent)
				}
			}
			// Malformed: FORMERR with our OPT and no cookie.
			for _, bad := range []string{"", "01020304", "01020304050607", cc1 + "01", cc1 + "01020304050607", cc1 + strings.Repeat("ab", 33)} {
				r := ask(cookieQuery("web.internal.", bad), acmeSrc)
				if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 || r.IsEdns0() == nil || len(r.IsEdns0().Option) != 0 {
					t.Fatalf("COOKIE of %d bytes: want FORMERR, got %v", len(bad)/2, r)
				}
			}
			two := cookieQuery("web.internal.", cc1)
			two.IsEdns0().Option = append(two.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cc2})
			if r := ask(two, acmeSrc); r.Rcode != dns.RcodeFormatError {
				t.Fatalf("two COOKIE options: want FORMERR, got %v", r)
			}
		})
	}
}

// TestCachedCookieAllocatesNothing: answering a query with a cookie from
// the cache, its server cookie checked and ours written in, allocates
// nothing.
func TestCachedCookieAllocatesNothing(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	w := s.newWorker()
	r, _ := exchange(t, s, cookieQuery("web.internal.", "0102030405060708"), acmeSrc, UDP)
	for _, c := range []string{"0102030405060708", replyCookie(t, r)} {
		raw := pack(t, cookieQuery("web.internal.", c))
		w.handle(raw, acmeSrc, netip.Addr{})
		if n := testing.AllocsPerRun(100, func() { w.handle(raw, acmeSrc, netip.Addr{}) }); n != 0 {
			t.Fatalf("cached path with cookie %s allocates %.1f times per query", c, n)
		}
	}
}

// TestCookieVerifiedSourcesCountedApart: spoofed queries in a prefix's
// name drain its rate limit, but a client there that sends our server
// cookie is counted in a bucket of its own and still answered.
func TestCookieVerifiedSourcesCountedApart(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "")
	cfg := *s.cfg.Load()
	cfg.RateLimit, cfg.RateLimitSlip = 10, -1
	s.Reconfigure(cfg)
	s.clock.close()
	w := s.newWorker()
	plain := pack(t, query("web.internal.", dns.TypeAAAA))
	for range 100 { // the spoofed flood
		w.handle(plain, acmeSrc, netip.Addr{})
	}
	if w.handle(plain, acmeSrc, netip.Addr{}) != nil {
		t.Fatal("the flood did not reach the limit")
	}
	// A client cookie alone proves nothing: still limited.
	if w.handle(pack(t, cookieQuery("web.internal.", "0102030405060708")), acmeSrc, netip.Addr{}) != nil {
		t.Fatal("a query with only a client cookie passed the drained limit")
	}
	// Learn a server cookie the way a client would (over TCP, not limited).
	r, _ := exchange(t, s, cookieQuery("web.internal.", "0102030405060708"), acmeSrc, TCP)
	good := pack(t, cookieQuery("web.internal.", replyCookie(t, r)))
	for i := range 10 {
		out := w.handle(good, acmeSrc, netip.Addr{})
		var m dns.Msg
		if out == nil || m.Unpack(out) != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
			t.Fatalf("verified query %d not answered during the spoofed flood", i)
		}
	}
	if w.handle(good, acmeSrc, netip.Addr{}) != nil {
		t.Fatal("verified queries are not limited at all")
	}
}

// TestDigCookies runs the real dig against a real server: dig +cookie gets
// a server cookie (dig prints "(good)" when its client cookie came back),
// sending that cookie back with +cookie=<value> is accepted (the same
// server cookie comes back), and a COOKIE of bad length gets FORMERR.
//
// The server has one UDP socket, which never sets SO_REUSEPORT, so dig
// cannot bind this port as its source and read its own query back
// (digtest.ReadOwnQuery): an echo of a +cookie=<client+server> query would
// read "(good)" and could not be told from a reply. The test checks that
// dig told to bind the port cannot.
func TestDigCookies(t *testing.T) {
	dig := etcdtest.RequireTool(t, "dig")
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.UDPSockets = 1
	s.cfg.Store(&cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	port := strconv.Itoa(s.Addrs()[0].(*net.UDPAddr).Port)
	if out, _ := exec.Command(dig, "-b", "127.0.0.1#"+port, "@127.0.0.1", "-p", port, "+tries=1", "+time=1", "web.internal", "AAAA").CombinedOutput(); digtest.ReadOwnQuery(string(out)) || strings.Contains(string(out), "status:") {
		t.Fatalf("dig bound the server's own port as its source:\n%s", out)
	}
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"@127.0.0.1", "-p", port, "+tries=1", "+time=2", "+noall", "+comments", "web.internal", "AAAA"}, args...)
		out, err := digtest.Again(t, func() (string, error) {
			out, err := exec.Command(dig, args...).CombinedOutput()
			return string(out), err
		})
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	cookieRE := regexp.MustCompile(`COOKIE: ([0-9a-f]+)(?: \((good|bad)\))?`)
	first := run("+cookie")
	m := cookieRE.FindStringSubmatch(first)
	if !strings.Contains(first, "status: NOERROR") || m == nil || len(m[1]) != 48 || m[2] != "good" {
		t.Fatalf("dig +cookie: want NOERROR and a good 24-byte cookie:\n%s", first)
	}
	again := run("+cookie=" + m[1])
	m2 := cookieRE.FindStringSubmatch(again)
	if !strings.Contains(again, "status: NOERROR") || m2 == nil || m2[1] != m[1] || m2[2] != "good" {
		t.Fatalf("dig +cookie=%s: want our server cookie accepted and returned:\n%s", m[1], again)
	}
	// A server cookie of ours 20 minutes old is valid and fresh: it comes
	// back as it is. One 40 minutes old is valid but renewed.
	now := s.cookieNow()
	for _, tc := range []struct {
		age  uint32
		echo bool
	}{{1200, true}, {2400, false}} {
		sent := make([]byte, replyCookieLen)
		copy(sent, "\x01\x02\x03\x04\x05\x06\x07\x08")
		s.cookies.serverCookie(sent[8:], sent[:8], netip.MustParseAddr("127.0.0.1"), now-tc.age)
		out := run("+cookie=" + hex.EncodeToString(sent))
		m := cookieRE.FindStringSubmatch(out)
		if m == nil || m[2] != "good" || (m[1] == hex.EncodeToString(sent)) != tc.echo {
			t.Fatalf("server cookie %d s old sent: want it returned %v:\n%s", tc.age, tc.echo, out)
		}
	}
	bad := run("+cookie=01020304050607")
	if !strings.Contains(bad, "status: FORMERR") {
		t.Fatalf("dig with a 7-byte cookie: want FORMERR:\n%s", bad)
	}
}
