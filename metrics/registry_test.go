package metrics

import (
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
)

func TestCountWalksTheSnapshot(t *testing.T) {
	got := Count(loadedStore(t).Snapshot())
	// beta's db exists through its machine; the destroyed machine and the
	// invalid one are not served.
	want := Sizes{Orgs: 2, Apps: 3, Machines: 3, Peers: 1}
	if got != want {
		t.Errorf("Count = %+v, want %+v", got, want)
	}
	if (Count(nil) != Sizes{}) {
		t.Error("Count(nil) is not zero")
	}
}

func TestSizesAreCountedOncePerSnapshot(t *testing.T) {
	store := loadedStore(t)
	var c sizeCache
	first := c.get(store.Snapshot())
	if c.snap.Value() != store.Snapshot() {
		t.Fatal("cache does not remember the counted snapshot")
	}
	evs, _ := registry.ParseText(registry.DefaultPrefix, `machines/acme/web/0a05 {"region":"ams","ip":"fdaa:0:18:a7b:1::5","state":"started"}`)
	store.Apply(store.Revision()+1, evs)
	second := c.get(store.Snapshot())
	if second.Machines != first.Machines+1 {
		t.Errorf("machines after adding one: %d, want %d", second.Machines, first.Machines+1)
	}
}

func TestRegistryCollector(t *testing.T) {
	store := loadedStore(t)
	m := New()
	contact := time.Now().Add(-3 * time.Second)
	m.WatchRegistry(store, fixedStatus(registry.Status{Ready: true, LastContact: contact, Loads: 1, WatchRestarts: 2,
		HistoryResets: map[string]uint64{registry.ResetDiverged: 3}}))
	reg := m.Registry()
	wantValue(t, reg, float64(store.Revision()), "meshdns_registry_revision")
	wantValue(t, reg, 2, "meshdns_registry_objects", "kind=orgs")
	wantValue(t, reg, 3, "meshdns_registry_objects", "kind=apps")
	wantValue(t, reg, 3, "meshdns_registry_objects", "kind=machines")
	wantValue(t, reg, 1, "meshdns_registry_objects", "kind=peers")
	wantValue(t, reg, 1, "meshdns_registry_invalid_values")
	wantValue(t, reg, 1, "meshdns_registry_ready")
	wantValue(t, reg, 1, "meshdns_registry_loads_total")
	wantValue(t, reg, 2, "meshdns_registry_watch_restarts_total")
	wantValue(t, reg, 3, "meshdns_registry_history_resets_total", "reason=history_diverged")
	wantValue(t, reg, 0, "meshdns_registry_history_resets_total", "reason=revision_behind")
	age, ok := metricValue(t, reg, "meshdns_registry_snapshot_age_seconds")
	if !ok || age < 3 || age > 10 {
		t.Errorf("snapshot age %v (present %v), want about 3s", age, ok)
	}
}

func TestRegistryCollectorBeforeTheFirstLoad(t *testing.T) {
	m := New()
	m.WatchRegistry(registry.NewStore(registry.DefaultPrefix), fixedStatus(registry.Status{LastContact: epoch}))
	reg := m.Registry()
	wantValue(t, reg, 0, "meshdns_registry_revision")
	wantValue(t, reg, 0, "meshdns_registry_ready")
	wantValue(t, reg, 0, "meshdns_registry_objects", "kind=machines")
	if _, ok := metricValue(t, reg, "meshdns_registry_snapshot_age_seconds"); ok {
		t.Error("snapshot age reported before etcd ever answered")
	}
}
