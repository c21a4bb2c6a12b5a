package harness

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

var (
	portsMu sync.Mutex
	// handedOut are the ports FreePort returned in this test binary. They
	// are never returned twice, so parallel tests of one binary cannot
	// collide with each other even after a server has closed its port.
	handedOut = map[int]bool{}
)

// FreePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// (and on [::1] too when ipv6 is set), and that no earlier call in this test
// binary returned. A DNS server needs the same port for both protocols.
//
// The port is closed again before it is returned, so another process may
// take it before the caller binds it; StartMeshdns retries with new ports
// when that happens.
func FreePort(t testing.TB, ipv6 bool) int {
	t.Helper()
	for range 100 {
		p, err := tryPort(ipv6)
		if err != nil {
			t.Fatalf("harness: allocate a port: %v", err)
		}
		if p == 0 {
			continue
		}
		portsMu.Lock()
		dup := handedOut[p]
		handedOut[p] = true
		portsMu.Unlock()
		if !dup {
			return p
		}
	}
	t.Fatal("harness: no free port for TCP and UDP found in 100 attempts")
	return 0
}

// tryPort lets the kernel pick a TCP port and checks that UDP (and [::1])
// can have it too. It returns 0 when they cannot, to try again.
func tryPort(ipv6 bool) (int, error) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer tl.Close()
	p := tl.Addr().(*net.TCPAddr).Port
	hosts := []string{"127.0.0.1"}
	if ipv6 {
		hosts = append(hosts, "::1")
	}
	for _, h := range hosts {
		addr := net.JoinHostPort(h, fmt.Sprint(p))
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, nil
		}
		defer u.Close()
		if h != "127.0.0.1" {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return 0, nil
			}
			defer l.Close()
		}
	}
	return p, nil
}
