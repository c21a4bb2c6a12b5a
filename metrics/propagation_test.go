package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/registry"
)

func TestPropagationIsMeasuredFromUpdatedAt(t *testing.T) {
	m := New()
	now := time.Now()
	m.prop.now = func() time.Time { return now }
	store := registry.NewStore(registry.DefaultPrefix, registry.WithListener(m.StoreListener()))
	evs, _ := registry.ParseText(registry.DefaultPrefix, `orgs/acme {"network":"fdaa:0:18::/48"}`)
	store.Replace(1, evs) // a full load is not a write to time

	stamp := func(d time.Duration) string { return now.Add(-d).UTC().Format(time.RFC3339Nano) }
	batch := []registry.Event{
		{Key: registry.DefaultPrefix + "machines/acme/web/0a01", ModRevision: 2,
			Value: fmt.Appendf(nil, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","updated_at":%q}`, stamp(1500*time.Millisecond))},
		{Key: registry.DefaultPrefix + "machines/acme/web/0a02", ModRevision: 2,
			Value: []byte(`{"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"started"}`)}, // no stamp
		{Key: registry.DefaultPrefix + "machines/acme/web/0a03", ModRevision: 2, Delete: true},
		{Key: registry.DefaultPrefix + "machines/acme/web/0a04", ModRevision: 2,
			Value: fmt.Appendf(nil, `{"region":"ams","ip":"fdaa:0:18:a7b:1::4","state":"started","updated_at":%q}`, stamp(-time.Minute))}, // writer's clock ahead
	}
	store.Apply(2, batch)

	wantValue(t, m.Registry(), 2, "meshdns_registry_propagation_seconds")
	wantValue(t, m.Registry(), 1, "meshdns_registry_propagation_clock_skew_total")
	if sum := histogramSum(t, m.Registry(), "meshdns_registry_propagation_seconds"); sum < 1.49 || sum > 1.51 {
		t.Errorf("sum of delays %vs, want 1.5s (and 0 for the skewed one)", sum)
	}
}

func TestPropagationSamplesLargeBatches(t *testing.T) {
	m := New()
	evs := make([]registry.Event, 5000)
	for i := range evs {
		evs[i] = registry.Event{Key: "k", Value: []byte(`{"updated_at":"2025-01-01T00:00:00Z"}`)}
	}
	m.StoreListener()(nil, nil, evs)
	got, _ := metricValue(t, m.Registry(), "meshdns_registry_propagation_seconds")
	if got != maxMeasuredPerBatch {
		t.Errorf("measured %v of a 5000-event batch, want %d", got, maxMeasuredPerBatch)
	}
}

func histogramSum(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
