//go:build linux

package main

import (
	"context"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// The installed dnsperf (2.10) prints only the average and maximum
// latency: -O latency-histogram came later, and -v (a line per query)
// costs dnsperf about a quarter of its throughput here. So the 99th
// percentile comes from a probe: one extra client, one query at a time
// with a pause between them, asking the same names while dnsperf keeps
// the server busy. Its latency is what one more client sees under that
// load, measured by the same means for every server.

// probe measures round-trip times of single queries until stopped.
type probe struct {
	rtts    []time.Duration
	timeout int
	done    chan struct{}
}

// startProbe asks addr the queries qs in turn, pausing gap between them.
func startProbe(ctx context.Context, addr string, qs []query, gap time.Duration) *probe {
	p := &probe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if len(qs) == 0 {
			return
		}
		poller, err := newUDPPoller(addr)
		if err != nil {
			return
		}
		defer poller.Close()
		msgs := make([]*dns.Msg, 0, min(len(qs), 1000))
		for _, q := range qs[:cap(msgs)] {
			m := new(dns.Msg)
			m.SetQuestion(q.Name, q.Type) // no EDNS, like dnsperf without -e
			msgs = append(msgs, m)
		}
		for i := 0; ctx.Err() == nil; i++ {
			start := time.Now()
			if _, err := poller.ask(msgs[i%len(msgs)], time.Second); err != nil {
				p.timeout++
			} else {
				p.rtts = append(p.rtts, time.Since(start))
			}
			time.Sleep(gap)
		}
	}()
	return p
}

// wait returns after the probe stopped (its context ended).
func (p *probe) wait() { <-p.done }

// percentile of the probe's round-trip times (0 without samples).
func (p *probe) percentile(q float64) time.Duration {
	return percentile(p.rtts, q)
}

// percentile returns the q-quantile (0..1) of ds, sorting ds in place.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds)) + 0.5)
	return ds[min(max(i-1, 0), len(ds)-1)]
}
