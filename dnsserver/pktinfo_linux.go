package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sockets bound to a wildcard address ([::]:53) answer on every address of
// the host: fdaa::3 and each org's <network>::3. To know which address a
// query was sent to — it decides whether an asker of another org is refused
// — and to send the reply from that same address, such sockets ask the
// kernel for each packet's destination (IP_PKTINFO / IPV6_PKTINFO) and set
// the source of each reply with the same control message.

// oobSize fits one IPv6 or IPv4 packet-info control message.
const oobSize = 64

// controlSocket prepares a UDP socket before it is bound: with join it sets
// SO_REUSEPORT, to share the port of the listen address's first socket
// (see shareAfterBind), so the kernel spreads queries over one socket per
// core; for wildcard addresses it asks for packet info.
func controlSocket(wildcard, v6, join bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = tuneSocket(int(fd), join, network[:3] == "udp" && wildcard, v6)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// tuneSocket sets SO_REUSEPORT on a UDP socket about to join its listen
// address's first (join), and with pktinfo (wildcard UDP sockets) asks for
// each packet's destination address.
func tuneSocket(fd int, join, pktinfo, v6 bool) error {
	if join {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", err)
		}
	}
	if !pktinfo {
		return nil
	}
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fmt.Errorf("IPV6_RECVPKTINFO: %w", err)
		}
	}
	// A dual-stack IPv6 socket reports IPv4 packets with IP_PKTINFO.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	return nil
}

// A listen address's sockets share one port, but only with each other.
// The first UDP socket binds without SO_REUSEPORT, so its bind fails with
// "address in use" when anything else holds the port: with SO_REUSEPORT
// set, a second meshdns (or any process) of the same user would be let in
// silently and the kernel would send it a share of the queries; and with
// port 0 the kernel would hand out a port that some other SO_REUSEPORT
// group of the same user already holds. Then shareAfterBind sets
// SO_REUSEPORT on the bound socket, and the other sockets set it before
// their bind and join it; the first of them to join makes the group.
// The TCP listener is a single socket and never sets it.

// shareAfterBind lets the sockets opened after this bound one share its
// port: the SO_REUSEPORT a joining socket sets, without packet info (the
// bound socket asked for that already, if it needed it).
func shareAfterBind(rc syscall.RawConn) error {
	return controlSocket(false, false, true)("udp", "", rc)
}

// parseDst finds the packet's destination address in its control messages.
func parseDst(oob []byte) netip.Addr {
	for len(oob) >= unix.SizeofCmsghdr {
		l := int(binary.NativeEndian.Uint64(oob[0:8]))
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= 16:
			return netip.AddrFrom16([16]byte(data[0:16]))
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= 12:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's destination).
			return netip.AddrFrom4([4]byte(data[8:12]))
		}
		next := (l + 7) &^ 7
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}

// srcControl writes into buf a control message that makes the reply leave
// from address src; it returns nil when src is unknown.
func srcControl(buf []byte, src netip.Addr) []byte {
	if !src.IsValid() {
		return nil
	}
	buf = buf[:0]
	if src.Is4() || src.Is4In6() {
		a := src.Unmap().As4()
		const n = unix.SizeofCmsghdr + unix.SizeofInet4Pktinfo
		buf = binary.NativeEndian.AppendUint64(buf, uint64(n))
		buf = binary.NativeEndian.AppendUint32(buf, unix.IPPROTO_IP)
		buf = binary.NativeEndian.AppendUint32(buf, unix.IP_PKTINFO)
		buf = append(buf, 0, 0, 0, 0) // ifindex: any
		buf = append(buf, a[:]...)    // spec_dst: the source to use
		buf = append(buf, 0, 0, 0, 0) // addr: ignored on send
		for len(buf)%8 != 0 {
			buf = append(buf, 0)
		}
		return buf
	}
	a := src.As16()
	const n = unix.SizeofCmsghdr + unix.SizeofInet6Pktinfo
	buf = binary.NativeEndian.AppendUint64(buf, uint64(n))
	buf = binary.NativeEndian.AppendUint32(buf, unix.IPPROTO_IPV6)
	buf = binary.NativeEndian.AppendUint32(buf, unix.IPV6_PKTINFO)
	buf = append(buf, a[:]...)
	buf = append(buf, 0, 0, 0, 0) // ifindex: any
	for len(buf)%8 != 0 {
		buf = append(buf, 0)
	}
	return buf
}

// setReceiveBuffer sizes a socket's receive buffer, past the system limit
// (net.core.rmem_max) when we may (CAP_NET_ADMIN), else up to it.
func setReceiveBuffer(c *net.UDPConn, n int) {
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { forceReceiveBuffer(int(fd), n) })
	}
}

// forceReceiveBuffer asks for an n-byte receive buffer past the system's
// rmem_max (we run as root), else for as much as it allows.
func forceReceiveBuffer(fd, n int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	}
}
