package dnsserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// udpMode is one way of reading UDP; every listener test runs in each.
type udpMode struct {
	name            string
	batch, blocking bool
}

var udpModes = []udpMode{{"single", false, false}, {"batch", true, false}, {"blocking", true, true}}

// TestWildcardListenRepliesFromQueriedAddress binds [::]:0 and queries it at
// several loopback addresses with connected sockets, which drop a reply that
// comes from any address but the one queried.
func TestWildcardListenRepliesFromQueriedAddress(t *testing.T) {
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) { testWildcardListen(t, mode) })
	}
}

func testWildcardListen(t *testing.T, mode udpMode) {
	t.Run("[::]", func(t *testing.T) { testWildcardAt(t, mode, "[::]:0", []string{"127.0.0.1", "127.0.0.2", "::1"}) })
	t.Run("0.0.0.0", func(t *testing.T) { testWildcardAt(t, mode, "0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2"}) })
}

func testWildcardAt(t *testing.T, mode udpMode, listen string, hosts []string) {
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.Listen = []string{listen}
	cfg.UDPBatch, cfg.UDPBlocking = mode.batch, mode.blocking
	s.cfg.Store(&cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	port := s.Addrs()[0].(*net.UDPAddr).Port
	for _, host := range hosts {
		for _, nw := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: nw, Timeout: 2 * time.Second}
			r, _, err := c.Exchange(query("web.internal.", dns.TypeAAAA), net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("%s %s: %v", nw, host, err)
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
				t.Fatalf("%s %s: %v", nw, host, r)
			}
		}
	}
}

// TestReusePortSockets checks that a specific address gets the sockets
// asked for (one per core by default) on one port, SO_REUSEPORT letting
// them share it, and that the server answers there.
func TestReusePortSockets(t *testing.T) {
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) { testReusePort(t, mode) })
	}
}

func testReusePort(t *testing.T, mode udpMode) {
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.UDPBatch, cfg.UDPBlocking = mode.batch, mode.blocking
	cfg.UDPSockets = 3 // more than one, whatever the machine's cores
	s.cfg.Store(&cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	addr := s.Addrs()[0].String()
	port := s.Addrs()[0].(*net.UDPAddr).Port
	if n := udpSocketsOn(t, "/proc/net/udp", "0100007F", port); n != cfg.UDPSockets {
		t.Fatalf("%d UDP sockets bound to 127.0.0.1:%d, want %d", n, port, cfg.UDPSockets)
	}
	for i := range 50 {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(query("web.internal.", dns.TypeAAAA), addr)
		if err != nil || len(r.Answer) != 2 {
			t.Fatalf("query %d: %v %v", i, r, err)
		}
	}
}

// TestUDPReaders: one socket per core; one blocking reader per socket, four
// poller readers, or UDPWorkers spread over the sockets; per listen address.
func TestUDPReaders(t *testing.T) {
	two := []string{"127.0.0.1:53", "[::1]:53"}
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{Listen: two, UDPSockets: 2, UDPBlocking: true}, 4},
		{Config{Listen: two[:1], UDPSockets: 2}, 8},
		{Config{Listen: two[:1], UDPSockets: 2, UDPWorkers: 6, UDPBlocking: true}, 6},
		{Config{Listen: two[:1], UDPSockets: 4, UDPWorkers: 1}, 4},
	} {
		if got := tc.cfg.UDPReaders(); got != tc.want {
			t.Errorf("%+v: %d readers, want %d", tc.cfg, got, tc.want)
		}
	}
}

// udpSocketsOn counts the sockets in table (/proc/net/udp or udp6) bound
// to the local address hexAddr (as the table writes it) and port.
func udpSocketsOn(t *testing.T, table, hexAddr string, port int) int {
	t.Helper()
	raw, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s:%04X", hexAddr, port)
	n := 0
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == want {
			n++
		}
	}
	return n
}
