//go:build !linux

package dnsserver

import (
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

// On systems other than Linux (macOS, FreeBSD, Windows, ...) meshdns serves
// UDP with the portable reader (udp_plain.go): plain net.UDPConn reads and writes,
// several goroutines on one socket per listen address, feeding the same
// query handling (worker.handle) as the Linux readers. What is missing
// there, and why it matters:
//
//   - No recvmmsg/sendmmsg, no blocking readers outside Go's poller, no
//     SO_REUSEPORT socket per core: --udp-blocking, --udp-batch and
//     --udp-sockets change nothing; throughput is that of Go's poller.
//   - No IP_PKTINFO: on a wildcard listener ([::]:53, 0.0.0.0:53) the
//     address a query was sent to is unknown, and the reply leaves from
//     whatever source address the kernel picks for the route (fine on a
//     host with one address per family; listen on the specific address
//     otherwise). With the destination unknown the asker is decided by its
//     source address alone — as everywhere — but a query of another org's
//     asker sent to an org's own DNS address (<network>::3) is not refused
//     for that reason (see identify in asker.go); it is still answered
//     from the asker's own org, so no org sees another's data. On a listener
//     bound to a specific address the destination is that address and the
//     check works as on Linux. TCP always knows its destination.

// linuxUDP is false: the Linux fast UDP readers are not built here.
const linuxUDP = false

// oobSize is zero: no per-packet control messages are read or sent.
const oobSize = 0

// controlSocket sets nothing: SO_REUSEPORT and IP_PKTINFO are Linux's here.
func controlSocket(wildcard, v6, join bool) func(network, address string, c syscall.RawConn) error {
	return nil
}

// shareAfterBind does nothing: one socket per listen address here.
func shareAfterBind(rc syscall.RawConn) error { return nil }

// parseDst cannot tell the destination without IP_PKTINFO: the zero Addr
// means unknown.
func parseDst(oob []byte) netip.Addr { return netip.Addr{} }

// srcControl asks for no source address: the kernel picks it.
func srcControl(buf []byte, src netip.Addr) []byte { return nil }

// setReceiveBuffer asks for a deep receive buffer; the system may grant
// less (macOS caps it at kern.ipc.maxsockbuf).
func setReceiveBuffer(c *net.UDPConn, n int) { _ = c.SetReadBuffer(n) }

// rawUDP is, here, an ordinary UDP socket: --udp-blocking opens one and
// serves it with the portable reader.
type rawUDP struct{ *net.UDPConn }

// openRawUDP binds a UDP socket at ap (port 0: the system picks).
func openRawUDP(ap netip.AddrPort, wildcard, v6, join bool) (*rawUDP, error) {
	network := "udp4"
	if v6 {
		network = "udp6"
		if wildcard {
			network = "udp" // [::] also takes IPv4, as on Linux
		}
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	setReceiveBuffer(c, udpReceiveBuffer)
	return &rawUDP{c}, nil
}

func (s *Server) serveRawUDP(r *rawUDP, wildcard bool) { s.servePortableUDP(r.UDPConn, wildcard) }

func (s *Server) serveUDPBatch(c *net.UDPConn, wildcard bool) { s.servePortableUDP(c, wildcard) }

// platformNotes are said at start: what this build does not do that the
// Linux one does.
func platformNotes() []string {
	return []string{
		"UDP served by the portable reader on " + runtime.GOOS + ": one socket per listen address, no recvmmsg/sendmmsg (--udp-blocking, --udp-batch and --udp-sockets need Linux)",
		"on wildcard listen addresses the destination of a UDP query is unknown here (IP_PKTINFO needs Linux): replies leave from the address the system picks, and queries to another org's <network>::3 are not refused for that reason (still answered only from the asker's own org); listen on specific addresses to have both",
	}
}
