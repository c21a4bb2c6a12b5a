package metrics

import (
	"testing"

	"github.com/meshdns/meshdns/dnsserver"
)

// Every series of meshdns_dns_rate_limited_total exists from the start, at
// zero, and then carries the server's counts.
func TestRateLimitCollector(t *testing.T) {
	m := New()
	var st dnsserver.RateLimitStats
	m.WatchRateLimit(func() dnsserver.RateLimitStats { return st })
	reg := m.Registry()
	for _, l := range [][]string{{"transport=udp", "action=drop"}, {"transport=udp", "action=slip"}, {"transport=tcp", "action=close"}} {
		wantValue(t, reg, 0, "meshdns_dns_rate_limited_total", l...)
	}
	st = dnsserver.RateLimitStats{UDPDropped: 30, UDPSlipped: 15, TCPClosed: 2}
	wantValue(t, reg, 30, "meshdns_dns_rate_limited_total", "transport=udp", "action=drop")
	wantValue(t, reg, 15, "meshdns_dns_rate_limited_total", "transport=udp", "action=slip")
	wantValue(t, reg, 2, "meshdns_dns_rate_limited_total", "transport=tcp", "action=close")
}
