package metrics

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/dnsserver"
)

// Sources of an answer, the latency histogram's "source" label.
const (
	sourceZone    = "zone"    // computed from the registry
	sourceCache   = "cache"   // from the answer cache
	sourceForward = "forward" // from an upstream resolver (or its cache)
	sourceOther   = "other"   // refused, malformed, not implemented...
)

var sources = []string{sourceZone, sourceCache, sourceForward, sourceOther}

// queryMetrics counts answered queries. It is the dnsserver.Observer and
// runs on the query path, so it avoids the label lookup (a hash and a
// shared lock in client_golang) for all but the first query of each
// (type, rcode, transport) by keeping the counters in a table.
type queryMetrics struct {
	requests  *prometheus.CounterVec
	table     [][][2]atomic.Pointer[counterRef] // [qtype][rcode][transport]
	duration  [2][]prometheus.Observer          // [transport][source]
	truncated [2]prometheus.Counter
	failOpen  prometheus.Counter
	listCut   []prometheus.Counter // [listIndex]
	forwarded *prometheus.CounterVec
	fwdByRc   []atomic.Pointer[counterRef]
	cache     hitCounters
	lane      *cacheLane // cached UDP answers
}

type counterRef struct{ c prometheus.Counter }

var transports = [2]string{dnsserver.UDP.String(), dnsserver.TCP.String()}

func newQueryMetrics(reg prometheus.Registerer) *queryMetrics {
	m := &queryMetrics{
		requests: newCounterVec("dns", "requests_total",
			"DNS queries answered, by query type (a fixed set, else \"other\"), response code and transport.",
			"type", "rcode", "transport"),
		forwarded: newCounterVec("dns", "forwarded_requests_total",
			"Queries for names outside .internal/.flycast answered through the upstream resolvers, by response code.",
			"rcode"),
		cache: newHitCounters("cache", "",
			"Zone answers served from the answer cache.",
			"Zone answers that had to be computed (not in the answer cache)."),
	}
	const durHelp = "Time from reading a query to having its reply, by transport and by where the answer came from (zone, cache, forward, other)."
	durLabels := []string{"transport", "source"}
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "dns", Name: "request_duration_seconds",
		Help: durHelp, Buckets: durationBuckets,
	}, durLabels)
	m.lane = newCacheLane(prometheus.NewDesc(prometheus.BuildFQName(namespace, "dns", "request_duration_seconds"), durHelp, durLabels, nil))
	trunc := newCounterVec("dns", "truncated_responses_total",
		"Replies sent with the TC bit (the client should retry over TCP).",
		"transport")
	m.failOpen = prometheus.NewCounter(counterOpts("dns", "fail_open_answers_total",
		"Health-aware answers that hold every started machine of the name because none of them is healthy (SPEC §5: fail open)."))
	cut := newCounterVec("dns", "list_answers_cut_total",
		"Answers longer than 64,000 bytes, cut: TXT lists (_instances, vms.<app>, ...) after the last whole entry that fits, by list; AAAA (list aaaa, nearest kept) and SRV (list srv) after the last whole record.",
		"list")
	for i := range len(listLabels) + 1 {
		m.listCut = append(m.listCut, cut.WithLabelValues(listName(i)))
	}
	reg.MustRegister(m.forwarded, &queryCollector{m: m, inner: []prometheus.Collector{m.requests, m.cache.hits, m.cache.misses, dur, trunc, m.failOpen, cut}})

	m.table = make([][][2]atomic.Pointer[counterRef], len(qtypeLabels)+1)
	for i := range m.table {
		m.table[i] = make([][2]atomic.Pointer[counterRef], len(rcodeLabels)+1)
	}
	m.fwdByRc = make([]atomic.Pointer[counterRef], len(rcodeLabels)+1)
	for t, tr := range transports {
		m.truncated[t] = trunc.WithLabelValues(tr)
		for _, src := range sources {
			if t == 0 && src == sourceCache {
				// The cache lane reports this series itself.
				m.duration[t] = append(m.duration[t], nil)
				continue
			}
			m.duration[t] = append(m.duration[t], dur.WithLabelValues(tr, src))
		}
	}
	return m
}

// ObserveQuery implements dnsserver.Observer.
func (m *queryMetrics) ObserveQuery(q dnsserver.QueryInfo) {
	tr := 0
	if q.Transport == dnsserver.TCP {
		tr = 1
	}
	qi, ri := qtypeIndex(q.Qtype), rcodeIndex(q.Rcode)
	if q.FailOpen {
		m.failOpen.Inc() // rare: every started machine of a name critical
	}
	if q.ListCut {
		m.listCut[cutIndex(q.Name, q.Qtype)].Inc() // rare: an answer over 64,000 bytes
	}
	if q.Cached && !q.Forwarded && tr == 0 {
		m.lane.observe(q.Worker, qi, ri, q.Duration, q.Truncated)
		return
	}
	m.requestCounter(qi, ri, tr).Inc()

	src := 3 // other
	switch {
	case q.Forwarded:
		src = 2
		m.counter(&m.fwdByRc[ri], func() prometheus.Counter {
			return m.forwarded.WithLabelValues(rcodeName(ri))
		}).Inc()
	case q.Cached:
		src = 1
		m.cache.hits.Inc()
	case q.Org != "" && q.Rcode != dns.RcodeRefused && q.Rcode != dns.RcodeServerFailure:
		// Answered from the zone for a known asker: the cache was asked.
		src = 0
		m.cache.misses.Inc()
	}
	m.duration[tr][src].Observe(q.Duration.Seconds())
	if q.Truncated {
		m.truncated[tr].Inc()
	}
}

// requestCounter is the requests_total series of (qtype, rcode, transport)
// indexes.
func (m *queryMetrics) requestCounter(qi, ri, tr int) prometheus.Counter {
	return m.counter(&m.table[qi][ri][tr], func() prometheus.Counter {
		return m.requests.WithLabelValues(qtypeName(qi), rcodeName(ri), transports[tr])
	})
}

// queryCollector gathers the query metrics: it first hands the cache
// lane's counts to the shared counters, then collects those, and adds the
// lane's histogram series.
type queryCollector struct {
	m     *queryMetrics
	inner []prometheus.Collector
}

func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, in := range c.inner {
		in.Describe(ch)
	}
}

func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.lane.flush(c.m)
	for _, in := range c.inner {
		in.Collect(ch)
	}
	ch <- c.m.lane.histogram()
}

// counter returns the table entry, creating its series on first use.
func (m *queryMetrics) counter(p *atomic.Pointer[counterRef], mk func() prometheus.Counter) prometheus.Counter {
	if r := p.Load(); r != nil {
		return r.c
	}
	// Two goroutines may race here; both get the same series from the vec.
	r := &counterRef{c: mk()}
	p.Store(r)
	return r.c
}

// newCounterVec is the counter meshdns_<subsystem>_<name> with the given
// labels.
func newCounterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(counterOpts(subsystem, name, help), labels)
}

func counterOpts(subsystem, name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
}

// hitCounters count the hits and misses of one cache:
// meshdns_<subsystem>_<prefix>hits_total and ..._<prefix>misses_total.
type hitCounters struct{ hits, misses prometheus.Counter }

func newHitCounters(subsystem, prefix, hitsHelp, missesHelp string) hitCounters {
	return hitCounters{
		hits:   prometheus.NewCounter(counterOpts(subsystem, prefix+"hits_total", hitsHelp)),
		misses: prometheus.NewCounter(counterOpts(subsystem, prefix+"misses_total", missesHelp)),
	}
}

func (c hitCounters) observe(hit bool) {
	if hit {
		c.hits.Inc()
	} else {
		c.misses.Inc()
	}
}
