package harness

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// QueryOptions shape a query sent with Query or Exchange. The zero value is
// a plain UDP query with RD set and no EDNS, as a stub resolver sends it.
type QueryOptions struct {
	// TCP sends the query over TCP instead of UDP.
	TCP bool
	// EDNS adds an OPT record (version EDNSVersion) advertising UDPSize
	// (default 1232). A non-zero UDPSize implies EDNS.
	EDNS        bool
	UDPSize     uint16
	EDNSVersion uint8
	// NoRecurse clears the RD bit.
	NoRecurse bool
	// Timeout bounds the exchange (default 2 s).
	Timeout time.Duration
}

// NewQuery builds the query message for name (made fully qualified) and
// qtype as opts describe. The name's case is kept byte for byte.
func NewQuery(name string, qtype uint16, opts QueryOptions) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = !opts.NoRecurse
	if opts.EDNS || opts.UDPSize != 0 || opts.EDNSVersion != 0 {
		size := opts.UDPSize
		if size == 0 {
			size = 1232
		}
		m.SetEdns0(size, false)
		m.IsEdns0().SetVersion(opts.EDNSVersion)
	}
	return m
}

// Exchange sends m to addr ("127.0.0.1:1053") and returns the reply and
// its size on the wire. Over UDP it reads up to 65,535 bytes whatever the
// query advertised, so a server that sends more than the client allowed is
// caught rather than hidden by a short read. (A decoded message's Len is
// not the wire size: it assumes no name compression.)
func Exchange(addr string, m *dns.Msg, opts QueryOptions) (*dns.Msg, int, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	network := proto(opts)
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	co := &dns.Conn{Conn: c, UDPSize: dns.MaxMsgSize}
	if err := co.WriteMsg(m); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		// dns.Conn.Read strips the TCP length prefix; over UDP it reads
		// one datagram.
		n, err := co.Read(buf)
		if err != nil {
			return nil, 0, err
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			return nil, n, fmt.Errorf("unpack %d-byte reply: %w", n, err)
		}
		if r.Id != m.Id && network == "udp" {
			continue // a late reply to an earlier query
		}
		return r, n, nil
	}
}

// Query sends one query for name and qtype to addr and returns the reply,
// failing the test if none arrives. Use it for checks that need control dig
// does not give (exact sizes, raw flags); use the real dig, through
// integration/digtest, for what an operator would type.
func Query(t testing.TB, addr, name string, qtype uint16, opts QueryOptions) *dns.Msg {
	t.Helper()
	r, _ := QuerySize(t, addr, name, qtype, opts)
	return r
}

// QuerySize is Query that also returns the reply's size on the wire.
func QuerySize(t testing.TB, addr, name string, qtype uint16, opts QueryOptions) (*dns.Msg, int) {
	t.Helper()
	r, n, err := Exchange(addr, NewQuery(name, qtype, opts), opts)
	if err != nil {
		t.Fatalf("harness: query %s %s at %s (%s): %v", name, dns.TypeToString[qtype], addr, proto(opts), err)
	}
	return r, n
}

func proto(opts QueryOptions) string {
	if opts.TCP {
		return "tcp"
	}
	return "udp"
}

// Poll calls check every interval until it returns true or timeout passes,
// and returns how long that took. On timeout the test fails with what the
// last call of check said. interval 0 means 10 ms.
func Poll(t testing.TB, timeout, interval time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	if interval == 0 {
		interval = 10 * time.Millisecond
	}
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, msg := check()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done within %v; last: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// Rcode names a response code as dig prints it ("NOERROR", "NXDOMAIN").
func Rcode(r *dns.Msg) string {
	if r == nil {
		return "(no reply)"
	}
	if s, ok := dns.RcodeToString[r.Rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", r.Rcode)
}
