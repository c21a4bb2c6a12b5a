package dnsserver

import (
	"errors"
	"net"
	"net/netip"

	"go.uber.org/zap"
)

// The portable UDP reader: plain net calls, built on every system so that
// its tests run on Linux too; systems other than Linux serve UDP with it
// (udp_other.go).

// servePortableUDP is one reader on one socket with plain net calls: read,
// answer, write, repeat. On a wildcard socket the destination is unknown
// (see above); otherwise it is the bound address.
func (s *Server) servePortableUDP(c *net.UDPConn, wildcard bool) {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	var dst netip.Addr
	if !wildcard {
		dst = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	}
	w := s.newWorker()
	w.conn, w.wildcard = c, false // no source address to set on replies
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Windows reports an ICMP port unreachable for an earlier reply
			// as a read error (WSAECONNRESET); the socket is still fine.
			s.log.Debug("udp read failed", zap.Error(err))
			continue
		}
		w.from = from
		out := w.handle(buf[:n], from.Addr(), dst)
		if out == nil {
			continue
		}
		if _, err := c.WriteToUDPAddrPort(out, from); err != nil && !s.closing.Load() {
			s.log.Debug("udp write failed", zap.Stringer("to", from), zap.Error(err))
		}
	}
}
