package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// Config is what the server needs to answer. Settings that may change at
// run time live here and are swapped as a whole.
type Config struct {
	// Listen are the addresses to serve on, UDP and TCP each.
	Listen []string
	// DefaultOrg is the org of askers whose source lies in no org's network.
	DefaultOrg string
	// Zones holds TTLs and the server's region.
	Zones zones.Config
	// UDPSize is the EDNS(0) UDP payload size we advertise and send up to.
	UDPSize uint16
	// UDPWorkers is how many goroutines read the UDP sockets: it bounds the
	// queries in flight instead of a goroutine per packet.
	UDPWorkers int
	// UDPBatch reads and writes UDP packets in batches (recvmmsg/sendmmsg).
	UDPBatch bool
	// UDPBlocking reads UDP with blocking batched system calls on sockets
	// kept out of Go's network poller, one reader thread per socket
	// (see blocking_linux.go). It implies UDPBatch.
	UDPBlocking bool
	// UDPSockets is how many SO_REUSEPORT sockets each listen address
	// gets; 0: one per GOMAXPROCS.
	UDPSockets int
	// TCPIdleTimeout closes idle TCP connections; TCPMaxQueries caps the
	// queries one connection may send.
	TCPIdleTimeout time.Duration
	TCPMaxQueries  int
	// TCPFirstQueryTimeout closes a TCP connection whose first query has
	// not arrived this long after the connect (default 2 s); later
	// queries have TCPIdleTimeout.
	TCPFirstQueryTimeout time.Duration
	// Forwarder resolves names outside our zones; nil answers them REFUSED.
	Forwarder Forwarder
	// ForwardTimeout bounds one forwarded query, all upstreams together.
	ForwardTimeout time.Duration
	// Observer, if set, is told about every query.
	Observer Observer
	// RateLimit is the UDP queries per second each source prefix (IPv6 /64,
	// IPv4 /24) may send; 0 turns limiting off. ErrorRateLimit is the
	// REFUSED and NXDOMAIN answers per second a prefix may receive (response
	// rate limiting); replies over it are dropped. 0 means RateLimit/10.
	RateLimit      int
	ErrorRateLimit int
	// RateLimitSlip answers every Nth query over a limit with a tiny TC=1
	// reply (question only) instead of dropping it, as NSD's and Knot's
	// response rate limiting do: a spoofed victim gets little, a real
	// client retries over TCP. 0 means 2; negative drops them all.
	RateLimitSlip int
	// AnswerCacheBytes bounds the memory of the UDP answer caches, all
	// workers together (cache.go). 0 means DefaultAnswerCacheBytes;
	// negative turns the cache off.
	AnswerCacheBytes int64
	// MaxTCPConns caps open TCP connections in all (default 1000); see
	// tcp.go for who is closed when a cap is reached.
	MaxTCPConns int
	Log         *zap.Logger
	// MaxTCPConnsPerPrefix caps the open TCP connections of one source
	// prefix (IPv6 /64, IPv4 /24); default 50.
	MaxTCPConnsPerPrefix int
}

// udpReceiveBuffer is the socket receive buffer each UDP socket asks for.
const udpReceiveBuffer = 8 << 20

// maxForwardsInFlight bounds the goroutines of forwarded UDP queries, all
// orgs together: a memory backstop. Who may wait on the upstreams is the
// Forwarder's to decide, per org (the forward package: at most 250 per
// org, 1,000 in all but for a minimum every org is guaranteed), and it
// refuses the rest at once, so their goroutines end at once; this bound is
// far enough above that for no org's flood to reach it.
const maxForwardsInFlight = 4096

// DefaultUDPSize is the EDNS buffer size recommended by DNS Flag Day 2020.
const DefaultUDPSize = 1232

// Server answers DNS queries from a registry Store.
type Server struct {
	store   *registry.Store
	log     *zap.Logger
	cfg     atomic.Pointer[Config]
	limiter atomic.Pointer[rateLimiter]
	clock   *coarseClock
	// forwardSlots bounds forwarded queries in flight.
	forwardSlots chan struct{}
	// workers numbers the UDP workers as they start.
	workers atomic.Int32
	// cache is the byte budget the workers' answer caches share.
	cache cacheBudget
	// cookies keys the server cookies (cookie.go).
	cookies cookieSecret

	mu      sync.Mutex
	udp     []udpSocket
	tcp     []net.Listener
	wg      sync.WaitGroup
	closing atomic.Bool
	addrs   []net.Addr
	// tcpConns counts the open TCP connections, per source prefix.
	tcpConns *tcpTable
	// tcpWorkers answer TCP queries (tcp.go).
	tcpWorkers *workerPool
	// limited counts the queries over a rate limit (RateLimitStats).
	limited limitCounts
}

// udpReaders is how many UDP sockets each listen address gets and how many
// readers each socket has. A blocking reader is a thread that answers until
// its socket is empty, one per socket as C servers run; poller readers are
// cheap goroutines, and a few per socket hide scheduling delays.
func (c *Config) udpReaders() (sockets, perSocket int) {
	if !linuxUDP {
		// No SO_REUSEPORT socket per core (udp_other.go): one socket,
		// four poller readers per core on it unless --udp-workers says.
		if c.UDPWorkers > 0 {
			return 1, c.UDPWorkers
		}
		return 1, 4 * runtime.GOMAXPROCS(0)
	}
	sockets = c.UDPSockets
	if sockets <= 0 {
		sockets = runtime.GOMAXPROCS(0)
	}
	workers := c.UDPWorkers
	if workers <= 0 {
		workers = 4 * sockets
		if c.UDPBlocking {
			workers = sockets
		}
	}
	return sockets, max(1, workers/sockets)
}

// UDPReaders is how many UDP readers Start will run in all, with one
// socket per core for each listen address.
func (c Config) UDPReaders() int {
	sockets, perSocket := c.udpReaders()
	return sockets * perSocket * len(c.Listen)
}

// New returns a server; Start binds its listeners.
func New(cfg Config, store *registry.Store) *Server {
	if cfg.UDPSize == 0 {
		cfg.UDPSize = DefaultUDPSize
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = 10 * time.Second
	}
	if cfg.TCPMaxQueries == 0 {
		cfg.TCPMaxQueries = 1000
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 2 * time.Second
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = defaultMaxTCPConns
	}
	if cfg.MaxTCPConnsPerPrefix <= 0 {
		cfg.MaxTCPConnsPerPrefix = defaultMaxTCPConnsPerPrefix
	}
	if cfg.TCPFirstQueryTimeout <= 0 {
		cfg.TCPFirstQueryTimeout = defaultTCPFirstQueryTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Server{store: store, log: cfg.Log, clock: newCoarseClock(), forwardSlots: make(chan struct{}, maxForwardsInFlight), cookies: newCookieSecret()}
	s.tcpConns = newTCPTable()
	s.tcpWorkers = newWorkerPool()
	s.setConfig(&cfg)
	return s
}

func (s *Server) setConfig(cfg *Config) {
	if cfg.ErrorRateLimit <= 0 {
		cfg.ErrorRateLimit = max(1, cfg.RateLimit/10)
	}
	if cfg.RateLimitSlip == 0 {
		cfg.RateLimitSlip = 2
	}
	if cfg.AnswerCacheBytes == 0 {
		cfg.AnswerCacheBytes = DefaultAnswerCacheBytes
	}
	old := s.cfg.Swap(cfg)
	if old == nil || old.RateLimit != cfg.RateLimit || old.ErrorRateLimit != cfg.ErrorRateLimit || old.RateLimitSlip != cfg.RateLimitSlip {
		s.limiter.Store(newRateLimiter(cfg.RateLimit, cfg.ErrorRateLimit, cfg.RateLimitSlip, s.clock))
	}
}

// Start binds UDP and TCP on every listen address and serves in the
// background. If any address cannot be bound, nothing is left listening.
func (s *Server) Start() error {
	cfg := s.cfg.Load()
	if len(cfg.Listen) == 0 {
		return errors.New("no --listen address given")
	}
	if err := CheckListen(cfg.Listen); err != nil {
		return err
	}
	s.clock.start()
	for _, note := range platformNotes() {
		s.log.Warn(note)
	}
	for _, addr := range cfg.Listen {
		if err := s.listen(addr, cfg); err != nil {
			s.Shutdown(context.Background())
			return err
		}
	}
	return nil
}

// CheckListen checks listen addresses as Start will: each must be ip:port,
// and no two may overlap (checkListenOverlap).
func CheckListen(listen []string) error {
	parsed := make([]listenAddr, 0, len(listen))
	for _, text := range listen {
		ap, err := parseListen(text)
		if err != nil {
			return err
		}
		parsed = append(parsed, listenAddr{text, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())})
	}
	return checkListenOverlap(parsed)
}

// listenAddr is a listen address as given and as parsed (unmapped).
type listenAddr struct {
	text string
	ap   netip.AddrPort
}

// parseListen parses one listen address. IPv6 link-local addresses (and
// zones, which only they use) are refused: askers reach meshdns at fdaa::3,
// their org's <network>::3 or loopback, and a link-local listener would
// need the interface carried through every socket call and reply.
func parseListen(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ap, fmt.Errorf("listen address %q: want ip:port, e.g. 127.0.0.1:1053 or [::]:53 (%v)", addr, err)
	}
	a := ap.Addr()
	if a.Zone() != "" || (a.Is6() && !a.Is4In6() && a.IsLinkLocalUnicast()) {
		return ap, fmt.Errorf("listen address %q: IPv6 link-local addresses and zones are not supported; listen on the host's address (e.g. [fdaa::3]:53), on loopback or on [::]:53", addr)
	}
	return ap, nil
}

// checkListenOverlap refuses two listen addresses on one port where one
// takes the other's packets: the same address twice, or a wildcard and an
// address it covers (0.0.0.0 covers every IPv4 address, [::] every address
// of both families). A listen address's sockets share their port with each
// other alone (see shareAfterBind), so the second would fail to bind with
// "address in use"; this says why instead. Port 0 picks a new port each
// time and never overlaps.
func checkListenOverlap(listen []listenAddr) error {
	for i, l := range listen {
		text, ap := l.text, l.ap
		if ap.Port() == 0 {
			continue // a new port each time: never overlaps
		}
		for _, p := range listen[:i] {
			if p.ap.Port() != ap.Port() {
				continue
			}
			if p.ap == ap {
				return fmt.Errorf("listen address %s is given twice (as %s too)", text, p.text)
			}
			w, other := p, l
			if covers(ap.Addr(), p.ap.Addr()) {
				w, other = other, p
			}
			switch {
			case !covers(w.ap.Addr(), other.ap.Addr()):
				// two specific addresses: no overlap
			case other.ap.Addr().IsUnspecified():
				return fmt.Errorf("listen addresses %s and %s overlap: %s takes IPv4 too; keep it alone", p.text, text, w.text)
			default:
				return fmt.Errorf("listen addresses %s and %s overlap: %s already answers on %s; list either the wildcard or the specific addresses", p.text, text, w.text, other.text)
			}
		}
	}
	return nil
}

// covers reports whether a socket bound to wildcard w takes packets for a
// (a different address): [::] takes both families, 0.0.0.0 IPv4.
func covers(w, a netip.Addr) bool {
	switch w {
	case netip.IPv6Unspecified():
		return true
	case netip.IPv4Unspecified():
		return a.Is4()
	}
	return false
}

func (s *Server) listen(addr string, cfg *Config) error {
	ap, err := parseListen(addr)
	if err != nil {
		return err
	}
	wildcard := ap.Addr().IsUnspecified()
	v6 := ap.Addr().Is6() && !ap.Addr().Is4In6()
	network := "udp4"
	if v6 {
		network = "udp6"
		if wildcard {
			network = "udp" // [::] also takes IPv4, as users of :53 expect
		}
	}
	// One socket per core, all on one port: the kernel spreads queries
	// over them and each has its own readers.
	sockets, perSocket := cfg.udpReaders()
	tnet := "tcp4"
	if v6 {
		tnet = "tcp6"
		if wildcard {
			tnet = "tcp"
		}
	}
	var (
		conns []udpSocket
		tl    net.Listener
		bind  netip.AddrPort
	)
	// Port 0 lets the kernel pick a free UDP port, which may still be taken
	// for TCP; then pick again rather than fail.
	attempts := 1
	if ap.Port() == 0 {
		attempts = 20
	}
	for try := 1; ; try++ {
		conns, tl, bind, err = bindPort(ap, network, tnet, wildcard, v6, sockets, cfg.UDPBlocking)
		if err == nil || try == attempts || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.udp = append(s.udp, conns...)
	s.tcp = append(s.tcp, tl)
	s.addrs = append(s.addrs, conns[0].LocalAddr())
	s.mu.Unlock()
	for _, c := range conns {
		for range perSocket {
			s.wg.Add(1)
			switch uc := c.(type) {
			case *rawUDP:
				go s.serveRawUDP(uc, wildcard)
			case *net.UDPConn:
				if cfg.UDPBatch {
					go s.serveUDPBatch(uc, wildcard)
				} else {
					go s.serveUDP(uc, wildcard)
				}
			}
		}
	}
	s.wg.Add(1)
	go s.acceptTCP(tl)
	s.log.Info("listening", zap.Stringer("addr", bind), zap.Int("udp_sockets", sockets))
	return nil
}

// udpSocket is a *net.UDPConn or a *rawUDP.
type udpSocket interface {
	Close() error
	LocalAddr() net.Addr
	SyscallConn() (syscall.RawConn, error)
}

// bindPort opens the UDP sockets (one per core, sharing the port with each
// other alone: see shareAfterBind) and the TCP listener on one port; with
// port 0 in ap the first UDP socket picks it. On error nothing stays open.
func bindPort(ap netip.AddrPort, network, tnet string, wildcard, v6 bool, sockets int, blocking bool) ([]udpSocket, net.Listener, netip.AddrPort, error) {
	var conns []udpSocket
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	bind := ap
	for i := range sockets {
		var c udpSocket
		join := i > 0
		if blocking {
			r, err := openRawUDP(bind, wildcard, v6, join)
			if err != nil {
				closeAll()
				return nil, nil, bind, fmt.Errorf("udp %s: %w", bind, err)
			}
			c = r
		} else {
			lc := net.ListenConfig{Control: controlSocket(wildcard, v6, join)}
			pc, err := lc.ListenPacket(context.Background(), network, bind.String())
			if err != nil {
				closeAll()
				return nil, nil, bind, fmt.Errorf("udp %s: %w", bind, err)
			}
			uc := pc.(*net.UDPConn)
			// A deep receive buffer rides out moments when the workers are
			// not scheduled; at the kernel default (~200 KiB, about a
			// millisecond of a flood) the kernel drops packets from every
			// source before the per-prefix limits can tell a flood from its
			// neighbours.
			setReceiveBuffer(uc, udpReceiveBuffer)
			c = uc
		}
		conns = append(conns, c)
		if i == 0 {
			bind = netip.AddrPortFrom(ap.Addr(), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			if sockets > 1 {
				rc, err := c.SyscallConn()
				if err == nil {
					err = shareAfterBind(rc)
				}
				if err != nil {
					closeAll()
					return nil, nil, bind, fmt.Errorf("udp %s: %w", bind, err)
				}
			}
		}
	}
	var lc net.ListenConfig
	tl, err := lc.Listen(context.Background(), tnet, bind.String())
	if err != nil {
		closeAll()
		return nil, nil, bind, fmt.Errorf("tcp %s: %w", bind, err)
	}
	return conns, tl, bind, nil
}

// Addrs are the bound UDP addresses (TCP uses the same ports), useful when
// a listen address asked for port 0.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// serveUDP is one worker reading one socket: read, answer, write, repeat.
// On a wildcard socket each packet's destination comes with it, and the
// reply leaves from that address.
func (s *Server) serveUDP(c *net.UDPConn, wildcard bool) {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	oob := make([]byte, oobSize)
	replyOOB := make([]byte, 0, oobSize)
	dst := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	w := s.newWorker()
	w.conn, w.wildcard = c, wildcard
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("udp read failed", zap.Error(err))
			continue
		}
		if wildcard {
			dst = parseDst(oob[:oobn])
		}
		w.from = from
		out := w.handle(buf[:n], from.Addr(), dst)
		if out == nil {
			continue
		}
		var ctl []byte
		if wildcard {
			ctl = srcControl(replyOOB, dst)
		}
		if _, _, err := c.WriteMsgUDPAddrPort(out, ctl, from); err != nil && !s.closing.Load() {
			s.log.Debug("udp write failed", zap.Stringer("to", from), zap.Error(err))
		}
	}
}

// Shutdown stops every listener and waits for the workers to finish. It
// may be called more than once (Start calls it when it fails).
func (s *Server) Shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.mu.Lock()
	for _, c := range s.udp {
		c.Close()
	}
	for _, l := range s.tcp {
		l.Close()
	}
	s.udp, s.tcp = nil, nil
	s.mu.Unlock()
	s.tcpConns.closeAll()
	s.clock.close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Reconfigure swaps the run-time settings (TTLs, forwarding, limits, ...).
// Listen addresses and worker counts keep the values given at Start.
func (s *Server) Reconfigure(cfg Config) {
	old := s.cfg.Load()
	cfg.Listen, cfg.UDPWorkers = old.Listen, old.UDPWorkers
	cfg.UDPBatch, cfg.UDPBlocking, cfg.UDPSockets = old.UDPBatch, old.UDPBlocking, old.UDPSockets
	if cfg.UDPSize == 0 {
		cfg.UDPSize = old.UDPSize
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = old.ForwardTimeout
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = old.TCPIdleTimeout
	}
	if cfg.TCPMaxQueries == 0 {
		cfg.TCPMaxQueries = old.TCPMaxQueries
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = old.MaxTCPConns
	}
	if cfg.MaxTCPConnsPerPrefix <= 0 {
		cfg.MaxTCPConnsPerPrefix = old.MaxTCPConnsPerPrefix
	}
	if cfg.TCPFirstQueryTimeout <= 0 {
		cfg.TCPFirstQueryTimeout = old.TCPFirstQueryTimeout
	}
	if cfg.Log == nil {
		cfg.Log = old.Log
	}
	s.setConfig(&cfg)
}
