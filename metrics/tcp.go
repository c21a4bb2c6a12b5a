package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/dnsserver"
)

// tcpCollector reads the DNS server's TCP connection counts at scrape time.
type tcpCollector struct {
	stats                 func() dnsserver.TCPStats
	open, total, replaced *prometheus.Desc
}

// WatchTCP adds the TCP connection gauge and counters, read from stats
// (dnsserver.Server.TCPStats) at each scrape. Call it once.
func (m *Metrics) WatchTCP(stats func() dnsserver.TCPStats) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "tcp", name), help, labels, nil)
	}
	m.reg.MustRegister(&tcpCollector{
		stats:    stats,
		open:     d("connections_open", "TCP connections open now."),
		total:    d("connections_total", "TCP connections taken (accepted), or closed at once over the connection caps (refused).", "result"),
		replaced: d("connections_replaced_total", "TCP connections closed to make room for a newer one, at the per-prefix or the global cap."),
	})
}

func (c *tcpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.total
	ch <- c.replaced
}

func (c *tcpCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(st.Accepted), "accepted")
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(st.Refused), "refused")
	ch <- prometheus.MustNewConstMetric(c.replaced, prometheus.CounterValue, float64(st.Replaced))
}
