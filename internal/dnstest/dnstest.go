// Package dnstest runs small DNS servers for tests: upstream resolvers,
// servers for dig to talk to, and resolvers that never answer.
package dnstest

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

// Serve answers DNS on one port of 127.0.0.1, UDP with udp and TCP with tcp
// (clients retry truncated answers over TCP on the same port), until the
// test ends. It returns "127.0.0.1:port".
func Serve(t testing.TB, udp, tcp dns.Handler) string {
	t.Helper()
	// The UDP port is free by construction; the same TCP port may be
	// taken, so try again with another.
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if errors.Is(err, syscall.EADDRINUSE) {
			pc.Close()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: udp}, {Listener: l, Handler: tcp}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go func() { _ = s.ActivateAndServe() }()
			<-started
			t.Cleanup(func() { _ = s.Shutdown() })
		}
		return "127.0.0.1:" + port
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

// Dead returns the address of a bound UDP socket that reads nothing and
// answers nothing: queries to it time out (no ICMP port unreachable).
func Dead(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}
