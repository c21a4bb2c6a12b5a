package metrics

import (
	"fmt"
	"strings"
	"time"

	"github.com/meshdns/meshdns/registry"
)

// ReadyFunc reports whether the server is ready, and why not in one line.
type ReadyFunc func() (ok bool, reason string)

// Readiness is ready once the store holds a snapshot that the syncer has
// confirmed current with etcd (SPEC §4). Until then, and whenever the
// syncer loses etcd, the reason says what is being served.
func Readiness(store *registry.Store, status StatusFunc) ReadyFunc {
	return readiness(store, status, time.Now)
}

func readiness(store *registry.Store, status StatusFunc, now func() time.Time) ReadyFunc {
	return func() (bool, string) {
		st := status()
		snap := store.Snapshot()
		if snap == nil {
			reason := "registry not loaded yet"
			if !contacted(st) {
				reason += "; etcd not reached yet"
			}
			if st.LastError != "" {
				reason += "; last error: " + st.LastError
			}
			return false, oneLine(reason)
		}
		if st.Ready && !snap.Stale {
			return true, "ok"
		}
		if st.Resetting != "" {
			return false, fmt.Sprintf("etcd's history is not the snapshot's (%s); serving the discarded snapshot at revision %d until a full load replaces it", st.Resetting, snap.Revision)
		}
		if snap.Stale {
			return false, fmt.Sprintf("serving the local copy at revision %d; not yet confirmed with etcd", snap.Revision)
		}
		since := now().Sub(st.LastContact)
		if !contacted(st) || since >= time.Second {
			return false, fmt.Sprintf("etcd unreachable for %s; serving snapshot at revision %d", since.Round(time.Second), snap.Revision)
		}
		return false, fmt.Sprintf("etcd watch restarting; serving snapshot at revision %d", snap.Revision)
	}
}

// oneLine keeps an error from etcd (which may span lines) to one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
