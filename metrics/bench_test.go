package metrics

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/dnsserver"
)

// BenchmarkObserveCachedQuery is the metrics cost of one cached UDP answer,
// from all GOMAXPROCS workers at once (the counters are shared).
func BenchmarkObserveCachedQuery(b *testing.B) {
	m := newQueryMetrics(prometheus.NewRegistry())
	info := dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Cached: true, Org: "acme", Duration: 300 * time.Nanosecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveQuery(info)
		}
	})
}
