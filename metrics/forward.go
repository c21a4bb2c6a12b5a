package metrics

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// forwardMetrics is the forward.Observer: upstream exchanges and the
// forwarder's reply cache. Upstreams come from the configuration, so the
// upstream label is bounded by what the operator configured.
type forwardMetrics struct {
	exchanges *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	cache     hitCounters
	probes    *prometheus.CounterVec
	healthy   *prometheus.GaugeVec
	busy      prometheus.Counter
}

func newForwardMetrics(reg prometheus.Registerer) *forwardMetrics {
	m := &forwardMetrics{
		exchanges: newCounterVec("forward", "upstream_requests_total",
			"Queries sent to upstream resolvers, by upstream, transport and result (ok, timeout, error).",
			"upstream", "proto", "result"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "forward", Name: "upstream_duration_seconds",
			Help:    "Time an upstream took to answer (successful exchanges only).",
			Buckets: prometheus.ExponentialBuckets(250e-6, 2, 14),
		}, []string{"upstream"}),
		cache: newHitCounters("forward", "cache_",
			"Forwarded questions answered from the forwarder's cache.",
			"Forwarded questions not in the forwarder's cache."),
		probes: newCounterVec("forward", "upstream_probes_total",
			"Health probes of upstream resolvers (a query for the root's NS records), by upstream and result (alive, dead).",
			"upstream", "result"),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "forward", Name: "upstream_healthy",
			Help: "1 while an upstream answered its last health probe, 0 while it failed it (then it is not asked); absent until the first probe.",
		}, []string{"upstream"}),
		busy: prometheus.NewCounter(counterOpts("forward", "busy_total",
			"Forwarded questions answered SERVFAIL at once because the asker's org had its share of questions waiting on the upstreams.")),
	}
	reg.MustRegister(m.exchanges, m.duration, m.cache.hits, m.cache.misses, m.probes, m.healthy, m.busy)
	return m
}

// ObserveUpstream implements forward.Observer.
func (m *forwardMetrics) ObserveUpstream(upstream, proto string, d time.Duration, err error) {
	result := "ok"
	var ne net.Error
	switch {
	case err == nil:
		m.duration.WithLabelValues(upstream).Observe(d.Seconds())
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		result = "timeout"
	default:
		result = "error"
	}
	m.exchanges.WithLabelValues(upstream, proto, result).Inc()
}

// ObserveCache implements forward.Observer.
func (m *forwardMetrics) ObserveCache(hit bool) { m.cache.observe(hit) }

// ObserveProbe implements forward.Observer.
func (m *forwardMetrics) ObserveProbe(upstream string, alive bool) {
	result, up := "dead", 0.0
	if alive {
		result, up = "alive", 1
	}
	m.probes.WithLabelValues(upstream, result).Inc()
	m.healthy.WithLabelValues(upstream).Set(up)
}

// ObserveUpstreams implements forward.UpstreamsObserver: a new forwarder's
// upstreams replace the old ones, healthy until probed.
func (m *forwardMetrics) ObserveUpstreams(addrs []string) {
	m.healthy.Reset()
	for _, a := range addrs {
		m.healthy.WithLabelValues(a).Set(1)
	}
}

// ObserveBusy implements forward.Observer.
func (m *forwardMetrics) ObserveBusy() { m.busy.Inc() }
