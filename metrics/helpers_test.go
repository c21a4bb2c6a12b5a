package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshdns/meshdns/registry"
)

const testRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
orgs/beta {"network":"fdaa:0:19::/48"}
apps/acme/web {}
apps/acme/empty {}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"stopped"}
machines/acme/web/0a03 {"region":"iad","ip":"fdaa:0:18:a7b:1::4","state":"destroyed"}
machines/beta/db/0b01 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}
peers/acme/laptop {"ip":"fdaa:0:18:a7b:9::2","region":"ams"}
machines/acme/web/0a09 {"region":"ams","ip":"not-an-ip","state":"started"}
`

func loadedStore(t *testing.T, opts ...registry.StoreOption) *registry.Store {
	t.Helper()
	s := registry.NewStore(registry.DefaultPrefix, opts...)
	evs, err := registry.ParseText(registry.DefaultPrefix, testRegistry)
	if err != nil {
		t.Fatal(err)
	}
	s.Replace(int64(len(evs)), evs)
	return s
}

// metricValue gathers reg and returns the value of the series name with
// exactly the given labels ("k=v" pairs), and whether it exists.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue(), true
				case m.Gauge != nil:
					return m.Gauge.GetValue(), true
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount()), true
				}
			}
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want []string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		if have[k] != v {
			return false
		}
	}
	return true
}

func wantValue(t *testing.T, reg prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := metricValue(t, reg, name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// fixedStatus returns a StatusFunc that always reports st.
func fixedStatus(st registry.Status) StatusFunc { return func() registry.Status { return st } }

var epoch = time.Unix(0, 0)
