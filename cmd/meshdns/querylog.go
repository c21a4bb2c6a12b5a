package main

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
)

// queryLog logs one query in every N at info level: enough to see what
// clients ask and how it goes, without a log line per query at 100k QPS.
// N can change at run time (SIGHUP); 0 logs nothing.
type queryLog struct {
	log   *zap.Logger
	every atomic.Uint64
	seen  atomic.Uint64
}

func newQueryLog(log *zap.Logger, every int) *queryLog {
	q := &queryLog{log: log}
	q.setEvery(every)
	return q
}

func (q *queryLog) setEvery(n int) { q.every.Store(uint64(max(n, 0))) }

// ObserveQuery implements dnsserver.Observer.
func (q *queryLog) ObserveQuery(info dnsserver.QueryInfo) {
	every := q.every.Load()
	if every == 0 || q.seen.Add(1)%every != 0 {
		return
	}
	q.log.Info("query",
		zap.String("name", info.Name),
		zap.String("type", dns.Type(info.Qtype).String()),
		zap.String("rcode", dns.RcodeToString[info.Rcode]),
		zap.Stringer("transport", info.Transport),
		zap.Stringer("src", info.Src),
		zap.String("org", info.Org),
		zap.Duration("took", info.Duration),
		zap.Bool("forwarded", info.Forwarded),
		zap.Bool("cached", info.Cached),
		zap.Int("size", info.Size),
		zap.Bool("truncated", info.Truncated),
	)
}

// observers tells each of several observers about every query.
type observers []dnsserver.Observer

func (obs observers) ObserveQuery(info dnsserver.QueryInfo) {
	for _, o := range obs {
		o.ObserveQuery(info)
	}
}
