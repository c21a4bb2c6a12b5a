package metrics

import (
	"sync/atomic"
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
	var workers atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		info := info
		info.Worker = int(workers.Add(1)) // as each UDP reader numbers itself
		for pb.Next() {
			m.ObserveQuery(info)
		}
	})
}
