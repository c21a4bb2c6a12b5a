package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/meshdns/meshdns/registry"
)

// benchStore holds orgs × 10 apps × 100 machines.
func benchStore(b *testing.B, orgs int) *registry.Store {
	b.Helper()
	var evs []registry.Event
	p := registry.DefaultPrefix
	for o := range orgs {
		evs = append(evs, registry.Event{Key: fmt.Sprintf("%sorgs/org%d", p, o), Value: fmt.Appendf(nil, `{"network":"fdaa:%x::/48"}`, o+1)})
		for a := range 10 {
			evs = append(evs, registry.Event{Key: fmt.Sprintf("%sapps/org%d/app%d", p, o, a), Value: []byte(`{}`)})
			for m := range 100 {
				evs = append(evs, registry.Event{Key: fmt.Sprintf("%smachines/org%d/app%d/%014x", p, o, a, m),
					Value: fmt.Appendf(nil, `{"region":"ams","ip":"fdaa:%x:0:%x::%x","state":"started"}`, o+1, a, m+2)})
			}
		}
	}
	s := registry.NewStore(p)
	s.Replace(int64(len(evs)), evs)
	return s
}

// BenchmarkStatusPage renders the HTML page of 100 orgs and 100,000
// machines: "walk" is the first view after the snapshot changed (counts
// and rows computed), "cached" a later view of the same snapshot.
func BenchmarkStatusPage(b *testing.B) {
	store := benchStore(b, 100)
	m := New()
	p := m.NewStatusPage(store, fixedStatus(registry.Status{Ready: true}), func() (bool, string) { return true, "ok" }, StatusInfo{})
	req := httptest.NewRequest("GET", "/", nil)
	for _, walk := range []bool{true, false} {
		name := "cached"
		if walk {
			name = "walk"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if walk {
					p.orgs = orgCache{}
				}
				w := httptest.NewRecorder()
				p.ServeHTTP(w, req)
				_, _ = io.Copy(io.Discard, w.Body)
			}
		})
	}
}
