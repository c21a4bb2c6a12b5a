package metrics

import (
	"testing"

	"github.com/meshdns/meshdns/dnsserver"
)

func TestTCPCollector(t *testing.T) {
	m := New()
	m.WatchTCP(func() dnsserver.TCPStats {
		return dnsserver.TCPStats{Open: 7, Accepted: 40, Refused: 3, Replaced: 5}
	})
	reg := m.Registry()
	wantValue(t, reg, 7, "meshdns_tcp_connections_open")
	wantValue(t, reg, 40, "meshdns_tcp_connections_total", "result=accepted")
	wantValue(t, reg, 3, "meshdns_tcp_connections_total", "result=refused")
	wantValue(t, reg, 5, "meshdns_tcp_connections_replaced_total")
}
