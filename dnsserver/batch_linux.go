package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// With one recvmsg and one sendmsg per query, the kernel's work per call
// costs more than answering from the cache. recvmmsg and sendmmsg move up
// to batchSize packets per system call when several are waiting, and cost
// the same as the single calls when one is.

const (
	batchSize = 32
	// maxQuerySize bounds a UDP query we read; a longer one is cut by the
	// kernel (MSG_TRUNC) and dropped, as no real query is that long.
	maxQuerySize = 4096
)

type udpBatch struct {
	rhdrs [batchSize]unix.Mmsghdr
	riovs [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	bufs  [batchSize][maxQuerySize]byte
	roobs [batchSize][oobSize]byte

	shdrs [batchSize]unix.Mmsghdr
	siovs [batchSize]unix.Iovec
	outs  [batchSize][]byte
	soobs [batchSize][oobSize]byte
}

func newUDPBatch() *udpBatch {
	b := new(udpBatch)
	for i := range batchSize {
		b.riovs[i].Base = &b.bufs[i][0]
		h := &b.rhdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.riovs[i]
		h.SetIovlen(1)
		h.Control = &b.roobs[i][0]
		b.shdrs[i].Hdr.Iov = &b.siovs[i]
		b.shdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// serveUDPBatch is serveUDP with batched system calls.
func (s *Server) serveUDPBatch(c *net.UDPConn, wildcard bool) {
	defer s.wg.Done()
	rc, err := c.SyscallConn()
	if err != nil {
		s.log.Error("udp socket has no raw access; stopping this reader", zap.Error(err))
		return
	}
	b := newUDPBatch()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	w := s.newWorker()
	w.conn, w.wildcard = c, wildcard
	for {
		b.resetReads()
		var n int
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false
			}
			n, errno = int(r), e
			return true
		})
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("udp read failed", zap.Error(err))
			continue
		}
		if errno != 0 {
			if errno != unix.EINTR {
				s.log.Warn("udp read failed", zap.Error(errno))
			}
			continue
		}
		m := s.answerBatch(w, b, n, local, wildcard)
		s.sendBatch(rc, b, m)
	}
}

// resetReads prepares the receive headers for the next recvmmsg.
func (b *udpBatch) resetReads() {
	for i := range batchSize {
		h := &b.rhdrs[i]
		h.Len = 0
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.Flags = 0
		h.Hdr.SetControllen(oobSize)
		b.riovs[i].SetLen(maxQuerySize)
	}
}

// answerBatch answers the n packets just read into b and prepares the
// replies in b's send headers; it returns how many are to be sent.
func (s *Server) answerBatch(w *worker, b *udpBatch, n int, local netip.Addr, wildcard bool) int {
	m := 0
	for i := range n {
		h := &b.rhdrs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			continue
		}
		from, ok := sockaddrAddrPort(&b.names[i], h.Hdr.Namelen)
		if !ok {
			continue
		}
		dst := local
		if wildcard {
			dst = parseDst(b.roobs[i][:h.Hdr.Controllen])
		}
		w.from = from
		out := w.handle(b.bufs[i][:h.Len], from.Addr(), dst)
		if out == nil {
			continue
		}
		b.outs[m] = append(b.outs[m][:0], out...)
		sh := &b.shdrs[m].Hdr
		sh.Name = h.Hdr.Name
		sh.Namelen = h.Hdr.Namelen
		b.siovs[m].Base = &b.outs[m][0]
		b.siovs[m].SetLen(len(b.outs[m]))
		sh.Control, sh.Controllen = nil, 0
		if wildcard {
			if ctl := srcControl(b.soobs[m][:0], dst); len(ctl) > 0 {
				sh.Control = &b.soobs[m][0]
				sh.SetControllen(len(ctl))
			}
		}
		m++
	}
	return m
}

// sendBatch sends the first m prepared replies, as many per call as the
// kernel takes.
func (s *Server) sendBatch(rc syscall.RawConn, b *udpBatch, m int) {
	for sent := 0; sent < m; {
		var r int
		var errno syscall.Errno
		err := rc.Write(func(fd uintptr) bool {
			n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shdrs[sent])), uintptr(m-sent), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false
			}
			r, errno = int(n), e
			return true
		})
		if err != nil || (errno != 0 && errno != unix.EINTR) {
			if err == nil && !s.closing.Load() {
				s.log.Debug("udp write failed", zap.Error(errno))
				sent++ // skip the reply the kernel refused (e.g. unreachable)
				continue
			}
			return
		}
		sent += r
	}
}

// sockaddrAddrPort reads a sockaddr_in or sockaddr_in6 the kernel filled in.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	}
	return netip.AddrPort{}, false
}
