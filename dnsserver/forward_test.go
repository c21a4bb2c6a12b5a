package dnsserver

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/internal/dnstest"
)

// TestSlowUpstreamBlocksNoWorker floods the server with queries for an
// upstream that never answers (a bound socket that reads nothing) and checks
// that .internal queries are still answered at once.
func TestSlowUpstreamBlocksNoWorker(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	fw, err := forward.New(forward.Config{Upstreams: []string{dead.LocalAddr().String()}, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.Forwarder, cfg.ForwardTimeout = fw, 3*time.Second
	s.Reconfigure(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	addr := s.Addrs()[0].String()

	// More forwarded queries than there are UDP workers, all waiting.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 100 {
		m := query("example.com.", dns.TypeA)
		m.Id = uint16(i)
		if _, err := c.Write(pack(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	// Every one of them read and waiting on the upstream, each holding a
	// forwarding slot, before the .internal queries go out.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.forwardSlots) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 100 forwarded queries in flight after 5 s", len(s.forwardSlots))
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 2 s: a worker blocked on the upstream would wait out its 3 s.
			cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			r, _, err := cl.Exchange(query("web.internal.", dns.TypeAAAA), addr)
			if err != nil || len(r.Answer) != 2 {
				t.Errorf("internal query during forwarding flood: %v %v", r, err)
			}
		}()
	}
	wg.Wait()
}

// TestForwardedReplyInEveryUDPMode checks that a forwarded answer, sent
// later from a goroutine of its own, reaches the client from the address it
// asked, whichever way the UDP sockets are read.
func TestForwardedReplyInEveryUDPMode(t *testing.T) {
	up := dnstest.Serve(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 7)})
		_ = w.WriteMsg(m)
	}), nil)
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) {
			fw, err := forward.New(forward.Config{Upstreams: []string{up}, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s := newTestServer(t, testRegistry(0), "acme")
			cfg := *s.cfg.Load()
			cfg.Listen = []string{"[::]:0"}
			cfg.UDPBatch, cfg.UDPBlocking = mode.batch, mode.blocking
			cfg.Forwarder, cfg.ForwardTimeout = fw, 2*time.Second
			s.cfg.Store(&cfg)
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			port := s.Addrs()[0].(*net.UDPAddr).Port
			for _, host := range []string{"127.0.0.1", "::1"} {
				c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
				r, _, err := c.Exchange(query("example.com.", dns.TypeA), net.JoinHostPort(host, strconv.Itoa(port)))
				if err != nil {
					t.Fatalf("%s: %v", host, err)
				}
				if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
					t.Fatalf("%s: %v", host, r)
				}
			}
		})
	}
}
