package dnsserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkTCPQuery is one query and its answer on an open TCP connection
// over loopback: the whole TCP path, framing and connection bookkeeping
// included.
func BenchmarkTCPQuery(b *testing.B) {
	s := newTestServer(b, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.TCPMaxQueries = -1 // no limit of queries per connection
	s.cfg.Store(&cfg)
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	nc, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	c := &dns.Conn{Conn: nc}
	defer c.Close()
	m := query("web.internal.", dns.TypeAAAA)
	c.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteMsg(m); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ReadMsg(); err != nil {
			b.Fatal(err)
		}
	}
}
