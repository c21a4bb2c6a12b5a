package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
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
	obs := &workerSet{}
	cfg.Observer = obs
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
	for i := range 60 {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(query("web.internal.", dns.TypeAAAA), addr)
		if err != nil || len(r.Answer) != 2 {
			t.Fatalf("query %d: %v %v", i, r, err)
		}
	}
	if mode.blocking {
		// One reader per socket here, so the workers that answered from
		// their caches are the sockets that got queries: the kernel must
		// spread them over all three, the first (bound before it allowed
		// sharing) included. Each query came from a new source port; the
		// first query on each socket is a cache miss, which names no
		// worker, so each socket needs two of the 60: the odds that one
		// gets fewer are about 2.5e-9.
		if got := obs.distinct(); got != cfg.UDPSockets {
			t.Fatalf("queries answered by %d of the %d sockets' readers, want all", got, cfg.UDPSockets)
		}
	}
}

// workerSet records which workers answered from their caches (QueryInfo
// names no worker for other answers).
type workerSet struct {
	mu   sync.Mutex
	seen map[int]bool
}

func (w *workerSet) ObserveQuery(q QueryInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[int]bool{}
	}
	if q.Worker != 0 {
		w.seen[q.Worker] = true
	}
}

func (w *workerSet) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// TestListenPortTaken: a listen address's sockets share their port with
// each other alone. A second server on the same port fails to start with
// "address already in use", although it runs as the same user and sets
// SO_REUSEPORT (with which the kernel would otherwise let it in and send
// it a share of the queries), and a foreign SO_REUSEPORT TCP listener
// cannot join the TCP port.
func TestListenPortTaken(t *testing.T) {
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) {
			first := startOn(t, mode, "127.0.0.1:0")
			port := first.Addrs()[0].(*net.UDPAddr).Port
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

			second := newTestServer(t, testRegistry(0), "acme")
			cfg := *second.cfg.Load()
			cfg.Listen = []string{addr}
			cfg.UDPBatch, cfg.UDPBlocking, cfg.UDPSockets = mode.batch, mode.blocking, 2
			second.cfg.Store(&cfg)
			err := second.Start()
			if err == nil {
				second.Shutdown(context.Background())
				t.Fatalf("a second server started on %s, which the first holds", addr)
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second server on %s: %v, want address already in use", addr, err)
			}

			lc := net.ListenConfig{Control: reusePort}
			if l, err := lc.Listen(context.Background(), "tcp4", addr); err == nil {
				l.Close()
				t.Fatalf("an SO_REUSEPORT TCP listener joined the server's TCP port %s", addr)
			}
			// The first still answers, on both transports.
			for _, nw := range []string{"udp", "tcp"} {
				c := &dns.Client{Net: nw, Timeout: 2 * time.Second}
				if r, _, err := c.Exchange(query("web.internal.", dns.TypeAAAA), addr); err != nil || len(r.Answer) != 2 {
					t.Fatalf("%s after the failed second start: %v %v", nw, r, err)
				}
			}
		})
	}
}

// TestListenPortZeroAvoidsReusePortGroups: with port 0 the kernel picks the
// port, and it must pick one nobody holds. For a socket with SO_REUSEPORT
// set it may pick a port that an SO_REUSEPORT group of the same user holds
// (here 4,000 such sockets, a seventh of the ephemeral range); a server
// that landed there would share its queries with them. 40 starts per mode
// would land in one of those ports with odds of 1-(6/7)^40, over 99.7%, if
// the first socket set SO_REUSEPORT before its bind.
//
// Everything here is on an address of its own: the held sockets would
// otherwise join, and take queries from, servers of other tests (or other
// packages' test binaries) on 127.0.0.1 that share a port with them.
func TestListenPortZeroAvoidsReusePortGroups(t *testing.T) {
	const addr = "127.83.0.1"
	held := map[int]bool{}
	lc := net.ListenConfig{Control: reusePort}
	for range 4000 {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		held[pc.LocalAddr().(*net.UDPAddr).Port] = true
	}
	for _, mode := range udpModes {
		t.Run(mode.name, func(t *testing.T) {
			for i := range 40 {
				s := startOn(t, mode, addr+":0")
				port := s.Addrs()[0].(*net.UDPAddr).Port
				s.Shutdown(context.Background())
				if held[port] {
					t.Fatalf("start %d: port 0 gave %d, which an SO_REUSEPORT group of this user holds", i, port)
				}
			}
		})
	}
}

// startOn starts a test server on listen with two UDP sockets read in mode.
func startOn(t *testing.T, mode udpMode, listen string) *Server {
	t.Helper()
	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.Listen = []string{listen}
	cfg.UDPBatch, cfg.UDPBlocking, cfg.UDPSockets = mode.batch, mode.blocking, 2
	s.cfg.Store(&cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// reusePort sets SO_REUSEPORT before bind, as another program might.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
		return err
	}
	return serr
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

// TestListenOverlap: listen addresses on one port where one would take the
// other's packets are refused before anything is bound, with the reason;
// different ports, families or specific addresses are fine. So are
// addresses that are not ip:port, IPv6 link-local ones and zones.
func TestListenOverlap(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		want   string // "" for no error
	}{
		{[]string{"127.0.0.1:53", "[::1]:53"}, ""},
		{[]string{"[fdaa::3]:53", "[fdaa:0:18::3]:53"}, ""},
		{[]string{"127.0.0.1:53", "127.0.0.1:54"}, ""},
		{[]string{"0.0.0.0:53", "[::1]:53"}, ""},
		{[]string{"127.0.0.1:0", "0.0.0.0:0", "[::]:0"}, ""},
		{[]string{"127.0.0.1:53", "0.0.0.0:53"}, "127.0.0.1:53 and 0.0.0.0:53 overlap"},
		{[]string{"[::]:53", "127.0.0.1:53"}, "[::]:53 and 127.0.0.1:53 overlap"},
		{[]string{"[fdaa::3]:53", "[::]:53"}, "[fdaa::3]:53 and [::]:53 overlap"},
		{[]string{"0.0.0.0:53", "[::]:53"}, "0.0.0.0:53 and [::]:53 overlap: [::]:53 takes IPv4 too"},
		{[]string{"[::]:53", "[::1]:53"}, "[::]:53 and [::1]:53 overlap: [::]:53 already answers on [::1]:53"},
		{[]string{"127.0.0.1:53", "[::ffff:127.0.0.1]:53"}, "[::ffff:127.0.0.1]:53 is given twice"},
		{[]string{"[::1]:53", "[::1]:53"}, "[::1]:53 is given twice"},
		{[]string{"[fe80::1%eth0]:53"}, "link-local addresses and zones are not supported"},
		{[]string{"[fe80::1]:53"}, "link-local addresses and zones are not supported"},
		{[]string{"[fdaa::3%eth0]:53", "[fdaa::3]:53"}, "link-local addresses and zones are not supported"},
		{[]string{"[::%eth0]:53"}, "link-local addresses and zones are not supported"},
		{[]string{"169.254.1.1:53"}, ""},
		{[]string{"localhost:53"}, "want ip:port"},
	} {
		err := CheckListen(tc.listen)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want no error", tc.listen, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error containing %q", tc.listen, err, tc.want)
		}
	}

	s := newTestServer(t, testRegistry(0), "acme")
	cfg := *s.cfg.Load()
	cfg.Listen = []string{"127.0.0.1:53", "0.0.0.0:53"}
	s.cfg.Store(&cfg)
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "overlap") {
		s.Shutdown(context.Background())
		t.Fatalf("Start with overlapping listen addresses: %v, want the overlap named", err)
	}
}
