package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/registry"
)

const namespace = "meshdns"

// Metrics holds meshdns's collectors in a registry of its own (not the
// global default, so nothing a dependency registers leaks into /metrics).
type Metrics struct {
	reg     *prometheus.Registry
	queries *queryMetrics
	fwd     *forwardMetrics
	prop    *propagation
}

// New makes the collectors, with Go runtime and process metrics and a
// build-info gauge.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	return &Metrics{
		reg:     reg,
		queries: newQueryMetrics(reg),
		fwd:     newForwardMetrics(reg),
		prop:    newPropagation(reg),
	}
}

// Registry is where the metrics live, for the HTTP handler and tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Queries is the dnsserver.Observer that counts queries.
func (m *Metrics) Queries() dnsserver.Observer { return m.queries }

// Forward is the forward.Observer that counts upstream exchanges.
func (m *Metrics) Forward() forward.Observer { return m.fwd }

// StoreListener is the registry.WithListener callback that feeds the
// propagation histogram.
func (m *Metrics) StoreListener() func(old, new *registry.Snapshot, evs []registry.Event) {
	return m.prop.listen
}

// WatchRegistry adds the registry's gauges and counters, read from store
// and status at each scrape. Call it once.
func (m *Metrics) WatchRegistry(store *registry.Store, status StatusFunc) {
	m.reg.MustRegister(newRegistryCollector(store, status))
}

func buildInfo() prometheus.Collector {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which meshdns build is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
