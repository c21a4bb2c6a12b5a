package metrics

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/registry"
)

// maxMeasuredPerBatch bounds the work one registry batch costs the feeder
// goroutine: a bulk load of a million keys arrives as large batches, and a
// thousand samples of each describe its delay well enough.
const maxMeasuredPerBatch = 1000

// propagation measures how long registry writes take to reach this
// server: from the updated_at a writer stamps in the value to the moment
// the store published the snapshot holding it. It is the store listener
// (registry.WithListener), so it runs on the feeder's goroutine.
type propagation struct {
	hist prometheus.Histogram
	skew prometheus.Counter
	now  func() time.Time
	// Unix nanoseconds of the last published snapshot and of the last
	// one that carried events (for the status page).
	lastPublish, lastEvent atomic.Int64
}

func newPropagation(reg prometheus.Registerer) *propagation {
	p := &propagation{
		hist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "registry", Name: "propagation_seconds",
			Help: "Time from a registry write (the updated_at its writer stamped) to this server serving it. Writes without updated_at, deletions and full loads are not measured.",
			// 1ms to ~2 min: a watch delivers in milliseconds; an etcd
			// outage or a resumed watch shows as the long tail.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		skew: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "registry", Name: "propagation_clock_skew_total",
			Help: "Writes whose updated_at lay in this server's future (the writer's clock runs ahead); measured as 0.",
		}),
		now: time.Now,
	}
	reg.MustRegister(p.hist, p.skew)
	return p
}

// listen is the registry.WithListener callback.
func (p *propagation) listen(_, _ *registry.Snapshot, evs []registry.Event) {
	now := p.now()
	p.lastPublish.Store(now.UnixNano())
	if len(evs) == 0 {
		return // a full load or a progress notification: no write to time
	}
	p.lastEvent.Store(now.UnixNano())
	step := max(1, len(evs)/maxMeasuredPerBatch)
	for i := 0; i < len(evs); i += step {
		ev := &evs[i]
		if ev.Delete {
			continue
		}
		t, ok := updatedAt(ev.Value)
		if !ok {
			continue
		}
		d := now.Sub(t)
		if d < 0 {
			p.skew.Inc()
			d = 0
		}
		p.hist.Observe(d.Seconds())
	}
}

// updatedAt reads just the updated_at field of a registry value.
func updatedAt(value []byte) (time.Time, bool) {
	var v struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	if err := json.Unmarshal(value, &v); err != nil || v.UpdatedAt.IsZero() {
		return time.Time{}, false
	}
	return v.UpdatedAt, true
}
