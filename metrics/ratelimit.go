package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/dnsserver"
)

// rateLimitCollector reads the DNS server's counts of queries over the
// rate limit at scrape time. The server counts them in one shard per UDP
// reader (dnsserver.RateLimitStats), as the cache lane counts answers.
type rateLimitCollector struct {
	stats   func() dnsserver.RateLimitStats
	limited *prometheus.Desc
}

// WatchRateLimit adds meshdns_dns_rate_limited_total{transport,action},
// read from stats (dnsserver.Server.RateLimitStats) at each scrape. Its
// three series (udp drop, udp slip, tcp close) exist from the start, at
// zero, so dashboards and alerts over them see a series before the first
// flood. Call it once.
func (m *Metrics) WatchRateLimit(stats func() dnsserver.RateLimitStats) {
	m.reg.MustRegister(&rateLimitCollector{
		stats: stats,
		limited: prometheus.NewDesc(prometheus.BuildFQName(namespace, "dns", "rate_limited_total"),
			"Queries over their source prefix's rate limit (--rate-limit, --error-rate-limit), by transport and by what was done: "+
				"UDP queries dropped, or answered with a bare TC=1 reply (slip, every --rate-limit-slip-th), and TCP connections closed.",
			[]string{"transport", "action"}, nil),
	})
}

func (c *rateLimitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.limited }

func (c *rateLimitCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(st.UDPDropped), "udp", "drop")
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(st.UDPSlipped), "udp", "slip")
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(st.TCPClosed), "tcp", "close")
}
