package metrics

import (
	"strconv"
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
)

func TestReadiness(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	empty := registry.NewStore(registry.DefaultPrefix)
	loaded := loadedStore(t)
	rev := loaded.Revision()
	tests := []struct {
		name   string
		store  *registry.Store
		status registry.Status
		ok     bool
		reason string
	}{
		{"never reached etcd", empty, registry.Status{LastContact: epoch, LastError: "full load: context deadline\nexceeded"},
			false, "registry not loaded yet; etcd not reached yet; last error: full load: context deadline exceeded"},
		{"reached etcd, loading", empty, registry.Status{LastContact: now},
			false, "registry not loaded yet"},
		{"current", loaded, registry.Status{Ready: true, LastContact: now}, true, "ok"},
		{"etcd gone", loaded, registry.Status{LastContact: now.Add(-12 * time.Second)},
			false, "etcd unreachable for 12s; serving snapshot at revision " + strconv.FormatInt(rev, 10)},
		{"history reset", loaded, registry.Status{LastContact: now, Resetting: registry.ResetRevisionBehind},
			false, "etcd's history is not the snapshot's (revision_behind); serving the discarded snapshot at revision " + strconv.FormatInt(rev, 10) + " until a full load replaces it"},
		{"watch restarting", loaded, registry.Status{LastContact: now.Add(-100 * time.Millisecond)},
			false, "etcd watch restarting; serving snapshot at revision " + strconv.FormatInt(rev, 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := readiness(tc.store, fixedStatus(tc.status), clock)()
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("got (%v, %q), want (%v, %q)", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}
