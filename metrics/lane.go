package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Answers from a UDP reader's cache are nearly every query of a busy
// server. Counting each in client_golang's counters and histogram means
// several atomic operations on cache lines that every reader shares, which
// on two cores cost more than the rest of answering in user space. The
// cache lane counts them instead in one shard per reader (plain atomics no
// other core touches) and hands the totals to the shared collectors when
// /metrics is scraped. What a scrape shows is the same as if every query
// had been counted on its own.

const laneShards = 16 // readers beyond this share shards (still correct)

// laneShard holds one reader's counts since the last scrape, except the
// histogram, which is cumulative (a histogram cannot be added to in bulk).
type laneShard struct {
	req     []atomic.Uint64 // [qtype*numRcodes+rcode], UDP
	buckets []atomic.Uint64 // [i]: durations ≤ durationBuckets[i]; last: the rest
	hits    atomic.Uint64
	trunc   atomic.Uint64
	sumNs   atomic.Int64
	_       [64]byte // keep neighbouring shards' counters off this cache line
}

type cacheLane struct {
	shards [laneShards]laneShard
	desc   *prometheus.Desc // of the latency histogram, {udp, cache} series
}

var (
	numQtypes = len(qtypeLabels) + 1
	numRcodes = len(rcodeLabels) + 1
	// durationBuckets are the latency histogram's upper bounds, seconds:
	// 25µs to ~3.3s (zone answers take microseconds, forwarded ones
	// milliseconds up to the forward timeout).
	durationBuckets = prometheus.ExponentialBuckets(25e-6, 2.5, 14)
	durationBoundNs = func() []int64 {
		ns := make([]int64, len(durationBuckets))
		for i, b := range durationBuckets {
			ns[i] = int64(b * float64(time.Second))
		}
		return ns
	}()
)

func newCacheLane(desc *prometheus.Desc) *cacheLane {
	l := &cacheLane{desc: desc}
	for i := range l.shards {
		l.shards[i].req = make([]atomic.Uint64, numQtypes*numRcodes)
		l.shards[i].buckets = make([]atomic.Uint64, len(durationBuckets)+1)
	}
	return l
}

// observe counts one cached UDP answer of reader worker.
func (l *cacheLane) observe(worker, qi, ri int, d time.Duration, truncated bool) {
	sh := &l.shards[uint(worker)%laneShards]
	sh.req[qi*numRcodes+ri].Add(1)
	sh.hits.Add(1)
	if truncated {
		sh.trunc.Add(1)
	}
	b := len(durationBoundNs)
	for i, bound := range durationBoundNs {
		if int64(d) <= bound {
			b = i
			break
		}
	}
	sh.buckets[b].Add(1)
	sh.sumNs.Add(int64(d))
}

// flush adds the counts since the last flush to the shared counters.
func (l *cacheLane) flush(m *queryMetrics) {
	var hits, trunc uint64
	for i := range l.shards {
		sh := &l.shards[i]
		for k := range sh.req {
			if n := sh.req[k].Swap(0); n > 0 {
				qi, ri := k/numRcodes, k%numRcodes
				m.requestCounter(qi, ri, 0).Add(float64(n))
			}
		}
		hits += sh.hits.Swap(0)
		trunc += sh.trunc.Swap(0)
	}
	m.cache.hits.Add(float64(hits))
	m.truncated[0].Add(float64(trunc))
}

// histogram is the {udp, cache} latency series, all shards together. The
// count is the sum of the buckets (the last one is +Inf), so the series
// stays consistent while readers go on counting during the read.
func (l *cacheLane) histogram() prometheus.Metric {
	var sumNs int64
	perBucket := make([]uint64, len(durationBuckets)+1)
	for i := range l.shards {
		sh := &l.shards[i]
		for b := range sh.buckets {
			perBucket[b] += sh.buckets[b].Load()
		}
		sumNs += sh.sumNs.Load()
	}
	cum := make(map[float64]uint64, len(durationBuckets))
	var run uint64
	for i, bound := range durationBuckets {
		run += perBucket[i]
		cum[bound] = run
	}
	count := run + perBucket[len(durationBuckets)]
	return prometheus.MustNewConstHistogram(l.desc, count, float64(sumNs)/1e9, cum, transports[0], sourceCache)
}
