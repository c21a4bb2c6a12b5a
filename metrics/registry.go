package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/registry"
)

// StatusFunc reports the registry syncer's state (registry.Syncer.Status).
type StatusFunc func() registry.Status

// registryCollector reads the store and the syncer at scrape time: every
// value here is already kept by them, so nothing is done on their paths.
type registryCollector struct {
	store  *registry.Store
	status StatusFunc
	sizes  sizeCache
	now    func() time.Time

	revision, objects, invalid, ready, age, contact *prometheus.Desc
	loads, restarts, reconciles, drift              *prometheus.Desc
	resets                                          *prometheus.Desc
}

func newRegistryCollector(store *registry.Store, status StatusFunc) *registryCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "registry", name), help, labels, nil)
	}
	return &registryCollector{
		store: store, status: status, now: time.Now,
		revision:   d("revision", "etcd revision of the snapshot being served (0 before the first load)."),
		objects:    d("objects", "Objects in the snapshot being served, by kind (orgs, apps, machines: deployed ones, peers).", "kind"),
		invalid:    d("invalid_values", "Registry keys whose value is not served (does not parse or breaks a rule); the log names each."),
		ready:      d("ready", "1 when the snapshot is confirmed current with etcd (what /readyz reports), else 0."),
		age:        d("snapshot_age_seconds", "Seconds since etcd last answered the syncer: how stale the served snapshot may be."),
		contact:    d("last_contact_timestamp_seconds", "Unix time etcd last answered the syncer."),
		loads:      d("loads_total", "Full loads of the registry from etcd (the first, and after a compacted watch)."),
		restarts:   d("watch_restarts_total", "Watches on etcd started again after an error."),
		reconciles: d("reconciles_total", "Comparisons of the snapshot with etcd's contents at the same revision."),
		drift:      d("drift_keys_total", "Keys a reconcile found differing from etcd (each repaired by a full load); stays 0 in a healthy run."),
		resets: d("history_resets_total", "Times etcd's history was found not to be the one the snapshot followed (etcd restored from a backup, "+
			"its data lost, the cluster rebuilt), by reason; each discards the snapshot for a full load.", "reason"),
	}
}

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.revision, c.objects, c.invalid, c.ready, c.age, c.contact, c.loads, c.restarts, c.reconciles, c.drift, c.resets} {
		ch <- d
	}
}

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	snap := c.store.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	var rev int64
	if snap != nil {
		rev = snap.Revision
	}
	gauge(c.revision, float64(rev))
	z := c.sizes.get(snap)
	gauge(c.objects, float64(z.Orgs), "orgs")
	gauge(c.objects, float64(z.Apps), "apps")
	gauge(c.objects, float64(z.Machines), "machines")
	gauge(c.objects, float64(z.Peers), "peers")
	gauge(c.invalid, float64(c.store.InvalidCount()))
	gauge(c.ready, boolFloat(st.Ready && snap != nil))
	// Before etcd first answers there is no contact to measure from.
	if contacted(st) {
		gauge(c.age, c.now().Sub(st.LastContact).Seconds())
		gauge(c.contact, float64(st.LastContact.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(st.Loads))
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.WatchRestarts))
	ch <- prometheus.MustNewConstMetric(c.reconciles, prometheus.CounterValue, float64(st.Reconciles))
	ch <- prometheus.MustNewConstMetric(c.drift, prometheus.CounterValue, float64(st.Drift))
	for _, reason := range registry.ResetReasons {
		ch <- prometheus.MustNewConstMetric(c.resets, prometheus.CounterValue, float64(st.HistoryResets[reason]), reason)
	}
}

// contacted reports whether etcd ever answered (the syncer reports the
// Unix epoch before that).
func contacted(st registry.Status) bool { return st.LastContact.UnixNano() > 0 }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
