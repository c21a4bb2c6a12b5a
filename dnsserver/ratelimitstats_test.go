package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestRateLimitCounted floods a running server from loopback past a small
// rate limit, over UDP in every reading mode and then over TCP, and checks
// that RateLimitStats counts each query over the limit as what happened
// to it: dropped, slipped (TC=1 reply) or its TCP connection closed.
func TestRateLimitCounted(t *testing.T) {
	const limit, flood = 10, 40 // slip 2: of the 30 over the limit, 15 slip
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) {
			s := newTestServer(t, testRegistry(0), "acme")
			cfg := *s.cfg.Load()
			cfg.RateLimit, cfg.RateLimitSlip = limit, 2
			cfg.UDPBatch, cfg.UDPBlocking = mode.batch, mode.blocking
			s.Reconfigure(cfg)
			s.clock.close() // frozen: no token comes back during the test
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			if st := s.RateLimitStats(); st != (RateLimitStats{}) {
				t.Fatalf("before any query: %+v", st)
			}
			addr := s.Addrs()[0].String()

			c, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range flood {
				m := query("web.internal.", dns.TypeAAAA)
				m.Id = uint16(i + 1)
				if _, err := c.Write(pack(t, m)); err != nil {
					t.Fatal(err)
				}
			}
			answered, slipped := 0, 0
			buf := make([]byte, 4096)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for answered+slipped < flood-(flood-limit)/2 {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("after %d answers and %d slips: %v", answered, slipped, err)
				}
				var r dns.Msg
				if err := r.Unpack(buf[:n]); err != nil {
					t.Fatal(err)
				}
				if r.Truncated {
					slipped++
				} else {
					answered++
				}
			}
			waitStats(t, s, func(st RateLimitStats) bool { return st.UDPDropped+st.UDPSlipped == flood-limit })
			want := RateLimitStats{UDPDropped: (flood - limit) / 2, UDPSlipped: (flood - limit) / 2}
			if st := s.RateLimitStats(); st != want || answered != limit || slipped != int(want.UDPSlipped) {
				t.Fatalf("%d answered, %d slipped; stats %+v, want %+v", answered, slipped, st, want)
			}

			// The general path counts too (here: the 31st over, dropped,
			// and the 32nd, slipped).
			raw := pack(t, query("web.internal.", dns.TypeAAAA))
			lo := netip.MustParseAddr("127.0.0.1")
			if s.HandlePacket(Query{Raw: raw, Src: lo, Transport: UDP}) != nil || s.HandlePacket(Query{Raw: raw, Src: lo, Transport: UDP}) == nil {
				t.Fatal("general path: want a drop then a slip")
			}
			want.UDPDropped++
			want.UDPSlipped++
			if st := s.RateLimitStats(); st != want {
				t.Fatalf("after the general path: %+v, want %+v", st, want)
			}

			// The prefix has no tokens left: its TCP connection is closed
			// at its first query, without an answer.
			tc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			msg := binary.BigEndian.AppendUint16(nil, uint16(len(raw)))
			if _, err := tc.Write(append(msg, raw...)); err != nil {
				t.Fatal(err)
			}
			_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := tc.Read(buf); !errors.Is(err, io.EOF) {
				t.Fatalf("tcp over the limit: read %d bytes, %v; want the connection closed", n, err)
			}
			want.TCPClosed = 1
			waitStats(t, s, func(st RateLimitStats) bool { return st.TCPClosed > 0 })
			if st := s.RateLimitStats(); st != want {
				t.Fatalf("after tcp: %+v, want %+v", st, want)
			}
		})
	}
}

// A query over the limit is counted without allocating, dropped or
// slipped, on the readers' path.
func TestRateLimitCountingAllocatesNothing(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.RateLimit, cfg.RateLimitSlip = 1, 2
	s.Reconfigure(cfg)
	s.clock.close()
	w := s.newWorker()
	raw := pack(t, query("web.internal.", dns.TypeAAAA))
	src := netip.MustParseAddr("192.0.2.7")
	w.handle(raw, src, netip.Addr{}) // the one token
	if a := testing.AllocsPerRun(100, func() { w.handle(raw, src, netip.Addr{}) }); a != 0 {
		t.Errorf("%.1f allocations per query over the limit, want 0", a)
	}
	if st := s.RateLimitStats(); st.UDPDropped < 50 || st.UDPSlipped < 50 {
		t.Errorf("stats %+v after 101 queries over the limit", st)
	}
}

func waitStats(t *testing.T, s *Server, ok func(RateLimitStats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(s.RateLimitStats()) {
		if time.Now().After(deadline) {
			t.Fatalf("rate-limit stats %+v", s.RateLimitStats())
		}
		time.Sleep(time.Millisecond)
	}
}
