package dnsserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A socket in Go's network poller costs a park and a wake-up through epoll
// every time its queue runs dry: the reader goroutine parks, its thread
// looks for other work, spins, sleeps in epoll_pwait, and the next packet
// wakes that thread, which readies the goroutine, often on another thread.
// Under a steady load of small queries that happens thousands of times a
// second and costs more than answering.
//
// A rawUDP socket stays out of the poller: it is a blocking socket, and each
// reader blocks in recvmmsg(MSG_WAITFORONE) in its own system call, as a C
// server's thread would. The kernel wakes the one blocked thread when a
// packet arrives; the call then also takes whatever else is queued.

// rawUDP is a blocking UDP socket read outside Go's network poller.
type rawUDP struct {
	f     *os.File
	rc    syscall.RawConn
	local netip.AddrPort
	once  sync.Once
}

// readTimeout bounds each blocking read, so a reader notices shutdown even
// if the wake-up from shutdown(2) were lost.
const readTimeout = 250 * 1000 // microseconds

// openRawUDP binds a blocking UDP socket at ap (port 0: the kernel picks),
// with SO_REUSEPORT when it joins the port's first socket (join).
// wildcard sockets also report each packet's destination.
func openRawUDP(ap netip.AddrPort, wildcard, v6, join bool) (*rawUDP, error) {
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (*rawUDP, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tuneSocket(fd, join, wildcard, v6); err != nil {
		return fail("socket options", err)
	}
	if v6 {
		// [::] also takes IPv4, as with Go's "udp" network; a specific
		// IPv6 address takes only itself anyway.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	forceReceiveBuffer(fd, udpReceiveBuffer)
	tv := unix.Timeval{Usec: readTimeout}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("SO_RCVTIMEO", err)
	}
	var sa unix.Sockaddr
	if v6 {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind "+ap.String(), err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	local := ap
	switch a := got.(type) {
	case *unix.SockaddrInet6:
		local = netip.AddrPortFrom(ap.Addr(), uint16(a.Port))
	case *unix.SockaddrInet4:
		local = netip.AddrPortFrom(ap.Addr(), uint16(a.Port))
	}
	// A blocking descriptor: os.NewFile keeps it out of the poller.
	f := os.NewFile(uintptr(fd), "udp "+local.String())
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rawUDP{f: f, rc: rc, local: local}, nil
}

// LocalAddr is the bound address.
func (r *rawUDP) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(r.local) }

// SyscallConn gives access to the descriptor.
func (r *rawUDP) SyscallConn() (syscall.RawConn, error) { return r.rc, nil }

// Close wakes the blocked readers (shutdown(2) ends a blocking read on a UDP
// socket) and closes the socket once the last of them has returned.
func (r *rawUDP) Close() error {
	var err error
	r.once.Do(func() {
		_ = r.rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
		err = r.f.Close()
	})
	return err
}

// WriteMsgUDPAddrPort sends one datagram, for replies sent outside the
// reader (forwarded queries).
func (r *rawUDP) WriteMsgUDPAddrPort(b, oob []byte, to netip.AddrPort) (int, int, error) {
	var sa unix.Sockaddr
	if r.local.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	var n int
	var serr error
	err := r.rc.Control(func(fd uintptr) { n, serr = unix.SendmsgN(int(fd), b, oob, sa, 0) })
	if err == nil {
		err = serr
	}
	return n, len(oob), err
}

// yieldEvery is how often a blocking reader passes through the scheduler;
// well under the runtime's 10 ms before it treats a goroutine as stuck.
const yieldEvery = 2 * time.Millisecond

// serveRawUDP is serveUDPBatch's loop on a blocking socket: each call
// blocks until a packet arrives and takes up to batchSize that are queued.
func (s *Server) serveRawUDP(r *rawUDP, wildcard bool) {
	defer s.wg.Done()
	b := newUDPBatch()
	w := s.newWorker()
	w.conn, w.wildcard = r, wildcard
	lastYield := time.Now()
	err := r.rc.Control(func(fd uintptr) {
		for !s.closing.Load() {
			// A goroutine that never passes through the scheduler looks
			// stuck to the runtime's monitor after 10 ms: it then takes the
			// reader's P in the middle of its system call and keeps waking
			// up every 20 µs for a while. Yielding now and then (a few
			// hundred nanoseconds every couple of milliseconds) keeps the
			// monitor asleep and the reader on its P.
			if now := time.Now(); now.Sub(lastYield) > yieldEvery {
				runtime.Gosched()
				lastYield = now
			}
			b.resetReads()
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), batchSize, unix.MSG_WAITFORONE, 0, 0)
			if e != 0 {
				switch e {
				case unix.EAGAIN, unix.EINTR: // read timeout or signal: look at closing again
				default:
					if !s.closing.Load() {
						s.log.Warn("udp read failed", zap.Error(e))
					}
					if e == unix.EBADF || e == unix.ENOTSOCK {
						return
					}
					// Do not spin on an error that persists (ENOMEM...).
					time.Sleep(10 * time.Millisecond)
				}
				continue
			}
			if n == 0 {
				continue // shut down, or an empty datagram
			}
			m := s.answerBatch(w, b, int(n), r.local.Addr(), wildcard)
			for sent := 0; sent < m; {
				k, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shdrs[sent])), uintptr(m-sent), 0, 0, 0)
				if e != 0 {
					if e == unix.EINTR {
						continue
					}
					if !s.closing.Load() {
						s.log.Debug("udp write failed", zap.Error(e))
					}
					sent++ // skip the reply the kernel refused (e.g. unreachable)
					continue
				}
				sent += max(1, int(k))
			}
		}
	})
	if err != nil && !s.closing.Load() && !errors.Is(err, os.ErrClosed) {
		s.log.Error("udp socket unusable; stopping this reader", zap.Error(err))
	}
}
