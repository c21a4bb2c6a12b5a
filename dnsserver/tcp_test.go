package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTCPTableAdmit checks who is closed when a cap is reached: the
// prefix's own least recently used idle connection at the per-prefix cap;
// at the global cap the biggest holder's, unless the newcomer's prefix is
// itself the biggest.
func TestTCPTableAdmit(t *testing.T) {
	p := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i), 1}) }
	t.Run("per prefix", func(t *testing.T) {
		tb := newTCPTable()
		var cs []*tcpConn
		for range 3 {
			c := &tcpConn{src: p(1), key: prefixOf(p(1), false)}
			if v, ok := tb.admit(c, 3, 100); !ok || v != nil {
				t.Fatalf("under the caps: admitted %v, victim %v", ok, v)
			}
			cs = append(cs, c)
		}
		// cs[0] answers a query: cs[1] is now the least recently used.
		tb.setBusy(cs[0], true)
		tb.setBusy(cs[0], false)
		n := &tcpConn{src: p(1), key: prefixOf(p(1), false)}
		if v, ok := tb.admit(n, 3, 100); !ok || v != cs[1] {
			t.Fatalf("at the prefix cap: admitted %v, victim %v, want the LRU idle %v", ok, v, cs[1])
		}
		if got := tb.openFrom(p(1)); got != 3 {
			t.Fatalf("%d open, want 3", got)
		}
		if tb.setBusy(cs[1], true) {
			t.Fatal("a replaced connection can still be marked busy")
		}
		// All busy: the newcomer is refused.
		for _, c := range []*tcpConn{cs[0], cs[2], n} {
			tb.setBusy(c, true)
		}
		if v, ok := tb.admit(&tcpConn{src: p(1), key: prefixOf(p(1), false)}, 3, 100); ok || v != nil {
			t.Fatalf("prefix at its cap, all busy: admitted %v, victim %v", ok, v)
		}
		// Another prefix is not affected.
		if _, ok := tb.admit(&tcpConn{src: p(2), key: prefixOf(p(2), false)}, 3, 100); !ok {
			t.Fatal("another prefix refused")
		}
	})
	t.Run("global", func(t *testing.T) {
		tb := newTCPTable()
		add := func(i int) (*tcpConn, *tcpConn, bool) {
			c := &tcpConn{src: p(i), key: prefixOf(p(i), false)}
			v, ok := tb.admit(c, 10, 6)
			return c, v, ok
		}
		var big []*tcpConn
		for range 4 {
			c, _, _ := add(1)
			big = append(big, c)
		}
		add(2)
		add(2)
		// Full (6). Prefix 3 holds fewer than prefix 1: prefix 1's
		// oldest goes.
		if _, v, ok := add(3); !ok || v != big[0] {
			t.Fatalf("newcomer at the global cap: admitted %v, victim %v, want %v", ok, v, big[0])
		}
		// Prefix 1 (3) is still the biggest: it replaces its own LRU.
		if _, v, ok := add(1); !ok || v != big[1] {
			t.Fatalf("biggest holder at the global cap: admitted %v, victim %v, want its own %v", ok, v, big[1])
		}
		// Prefix 1's connections all busy: a smaller prefix still gets
		// one of them, or a holder could keep the server by keeping
		// busy.
		for _, h := range tb.holders[prefixOf(p(1), false)].conns {
			tb.setBusy(h, true)
		}
		if _, v, ok := add(4); !ok || v == nil || v.key != prefixOf(p(1), false) {
			t.Fatalf("biggest holder all busy: admitted %v, victim %v, want one of prefix 1", ok, v)
		}
		if st := tb.total; st != 6 {
			t.Fatalf("%d open, want 6", st)
		}
	})
	t.Run("global, tied holders", func(t *testing.T) {
		tb := newTCPTable()
		var cs []*tcpConn
		for _, i := range []int{1, 1, 2, 2} {
			c := &tcpConn{src: p(i), key: prefixOf(p(i), false)}
			tb.admit(c, 10, 4)
			cs = append(cs, c)
		}
		// Prefix 1 is in use, prefix 2 idle longer: prefix 2's oldest
		// goes, though both hold the most.
		for _, c := range cs[:2] {
			tb.setBusy(c, true)
			tb.setBusy(c, false)
		}
		if v, ok := tb.admit(&tcpConn{src: p(3), key: prefixOf(p(3), false)}, 10, 4); !ok || v != cs[2] {
			t.Fatalf("admitted %v, victim %v; want %v, the least recently used of the biggest holders", ok, v, cs[2])
		}
	})
	t.Run("ipv6 /64", func(t *testing.T) {
		tb := newTCPTable()
		a := netip.MustParseAddr("fdaa:0:18:1::2")
		b := netip.MustParseAddr("fdaa:0:18:1:ffff::9") // same /64
		c := netip.MustParseAddr("fdaa:0:18:2::2")      // next /64
		for _, src := range []netip.Addr{a, b} {
			if _, ok := tb.admit(&tcpConn{src: src, key: prefixOf(src, false)}, 2, 100); !ok {
				t.Fatal("under the caps refused")
			}
		}
		tb.setBusy(tb.holders[prefixOf(a, false)].conns[0], true)
		tb.setBusy(tb.holders[prefixOf(a, false)].conns[1], true)
		if _, ok := tb.admit(&tcpConn{src: a, key: prefixOf(a, false)}, 2, 100); ok {
			t.Fatal("a third connection of one /64 admitted")
		}
		if _, ok := tb.admit(&tcpConn{src: c, key: prefixOf(c, false)}, 2, 100); !ok {
			t.Fatal("another /64 refused")
		}
	})
}

// tcpTestServer serves the test registry on 127.0.0.1 with cfg's TCP
// settings applied on top of the test defaults.
func tcpTestServer(t *testing.T, defaultOrg string, set func(*Config)) (*Server, string) {
	t.Helper()
	s := newTestServer(t, testRegistry(0), defaultOrg)
	cfg := *s.cfg.Load()
	set(&cfg)
	s.setConfig(&cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, s.Addrs()[0].String()
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (any of 127/8: 127.0.N.1 is prefix N).
func dialFrom(t *testing.T, src, addr string) *dns.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dns.Conn{Conn: c}
}

// askTCP sends a query on c and reads the reply, both within 5 s.
func askTCP(c *dns.Conn) (*dns.Msg, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMsg(query("web.internal.", dns.TypeAAAA)); err != nil {
		return nil, err
	}
	return c.ReadMsg()
}

// closedByServer waits (up to 5 s) for the server to end c.
func closedByServer(c *dns.Conn) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	switch {
	case err == nil:
		return errors.New("server sent data")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("still open after 5 s")
	}
	return nil // EOF, or reset when our unread data was still queued
}

// waitAccepted polls until the server has accepted (or refused) n
// connections in all.
func waitAccepted(t *testing.T, s *Server, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.TCPStats()
		if st.Accepted+st.Refused >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server took %d connections, want %d", st.Accepted+st.Refused, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTCPPerPrefixLimit opens ten connections from one /24 with a cap of
// three: each newcomer replaces the prefix's oldest idle one, so the last
// three are served and the first seven are closed; another /24 is served
// meanwhile, and the first never holds more than three.
func TestTCPPerPrefixLimit(t *testing.T) {
	s, addr := tcpTestServer(t, "acme", func(c *Config) { c.MaxTCPConnsPerPrefix = 3 })
	var cs []*dns.Conn
	for range 10 {
		cs = append(cs, dialFrom(t, "127.0.1.1", addr))
	}
	waitAccepted(t, s, 10)
	if got := s.tcpConns.openFrom(netip.MustParseAddr("127.0.1.1")); got != 3 {
		t.Fatalf("prefix 127.0.1.0/24 holds %d connections, want 3", got)
	}
	for i, c := range cs[7:] {
		if r, err := askTCP(c); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("connection %d of the last three: %v %v", 7+i, r, err)
		}
	}
	for i, c := range cs[:7] {
		if err := closedByServer(c); err != nil {
			t.Errorf("connection %d, replaced by a newer one: %v", i, err)
		}
	}
	other := dialFrom(t, "127.0.2.1", addr)
	if r, err := askTCP(other); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("another /24: %v %v", r, err)
	}
	if st := s.TCPStats(); st.Replaced != 7 {
		t.Errorf("stats %+v, want 7 replaced", st)
	}
}

// TestTCPGlobalCapFairShare fills the global cap from one prefix; a
// connection from another prefix is served all the same, by closing the
// full prefix's least recently used connection.
func TestTCPGlobalCapFairShare(t *testing.T) {
	s, addr := tcpTestServer(t, "acme", func(c *Config) { c.MaxTCPConns, c.MaxTCPConnsPerPrefix = 8, 50 })
	var flood []*dns.Conn
	for i := range 4 {
		for range 2 {
			flood = append(flood, dialFrom(t, fmt.Sprintf("127.0.%d.1", 10+i), addr))
		}
	}
	waitAccepted(t, s, 8)
	if st := s.TCPStats(); st.Open != 8 {
		t.Fatalf("%+v, want 8 open", st)
	}
	for i := range 3 {
		c := dialFrom(t, "127.0.2.1", addr)
		if r, err := askTCP(c); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("connection %d of a prefix under its share at the global cap: %v %v", i, r, err)
		}
	}
	if st := s.TCPStats(); st.Open != 8 || st.Replaced != 3 {
		t.Fatalf("%+v, want 8 open and 3 replaced", st)
	}
	if err := closedByServer(flood[0]); err != nil {
		t.Errorf("the flood's oldest connection: %v", err)
	}
}

// TestTCPFirstQueryDeadline: a connection that sends nothing is closed
// after TCPFirstQueryTimeout; one that asked stays open past it (its next
// query has TCPIdleTimeout).
func TestTCPFirstQueryDeadline(t *testing.T) {
	_, addr := tcpTestServer(t, "acme", func(c *Config) {
		// 500 ms: the asking connection's first query must get there in
		// time, on a machine slowed by the race detector.
		c.TCPFirstQueryTimeout, c.TCPIdleTimeout = 500*time.Millisecond, 30*time.Second
	})
	silent := dialFrom(t, "127.0.0.1", addr)
	asking := dialFrom(t, "127.0.0.1", addr)
	if r, err := askTCP(asking); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("first query: %v %v", r, err)
	}
	start := time.Now()
	if err := closedByServer(silent); err != nil {
		t.Fatalf("connection without a query: %v", err)
	}
	t.Logf("silent connection closed %v after the check began", time.Since(start))
	time.Sleep(time.Second) // past the first-query deadline
	if r, err := askTCP(asking); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("second query, after the first-query deadline: %v %v", r, err)
	}
}

// TestTCPNoOrgClosed: a source in no org gets its REFUSED and then the
// connection is closed; an org's asker keeps its connection.
func TestTCPNoOrgClosed(t *testing.T) {
	_, addr := tcpTestServer(t, "", func(*Config) {})
	c := dialFrom(t, "127.0.0.1", addr)
	r, err := askTCP(c)
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("no-org asker: %v %v, want REFUSED", r, err)
	}
	if err := closedByServer(c); err != nil {
		t.Fatalf("no-org connection after REFUSED: %v", err)
	}

	_, addr = tcpTestServer(t, "acme", func(*Config) {})
	c = dialFrom(t, "127.0.0.1", addr)
	for i := range 3 {
		if r, err := askTCP(c); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("org asker, query %d on one connection: %v %v", i, r, err)
		}
	}
}

// TestTCPRateLimit: queries over TCP count against the per-prefix rate
// limit; past it the connection is closed without an answer. Another
// prefix is still answered.
func TestTCPRateLimit(t *testing.T) {
	const limit = 5
	_, addr := tcpTestServer(t, "acme", func(c *Config) { c.RateLimit = limit })
	c := dialFrom(t, "127.0.1.1", addr)
	answered := 0
	var err error
	for range 50 {
		var r *dns.Msg
		if r, err = askTCP(c); err != nil {
			break
		}
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("query %d: %v", answered, r)
		}
		answered++
	}
	if err == nil {
		t.Fatalf("50 queries answered at a limit of %d/s", limit)
	}
	if answered < limit {
		t.Fatalf("only %d queries answered before the close, want at least %d (the bucket starts full)", answered, limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("over the limit the query went unanswered on an open connection; want the connection closed")
	}
	if r, err := askTCP(dialFrom(t, "127.0.2.1", addr)); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("another /24: %v %v", r, err)
	}
}
