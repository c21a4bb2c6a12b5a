package dnsserver

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// rateLimiter bounds the queries each source prefix (an IPv6 /64, an IPv4
// /24) may send per second, and separately the error answers (REFUSED,
// NXDOMAIN) it may receive, so one flooding prefix cannot starve the others
// nor use us to bounce error replies at a victim. Token buckets refill from
// a coarse clock; the table is sharded and each shard bounded.
type rateLimiter struct {
	qps, errQPS float64
	shards      [64]limiterShard
	clock       *coarseClock
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[prefixKey]*bucket
}

type prefixKey [8]byte

type bucket struct {
	tokens, errTokens float64
	last              int64 // coarse clock, nanoseconds
}

// maxBucketsPerShard bounds memory under a flood of spoofed prefixes.
const maxBucketsPerShard = 4096

func newRateLimiter(qps, errQPS int, clock *coarseClock) *rateLimiter {
	if qps <= 0 {
		return nil
	}
	rl := &rateLimiter{qps: float64(qps), errQPS: float64(errQPS), clock: clock}
	for i := range rl.shards {
		rl.shards[i].buckets = map[prefixKey]*bucket{}
	}
	return rl
}

func prefixOf(a netip.Addr) prefixKey {
	var k prefixKey
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		copy(k[:3], b[:3])
		k[7] = 4
		return k
	}
	b := a.As16()
	copy(k[:], b[:8])
	return k
}

// allow takes one query token for src's prefix. isErr also takes an
// error-answer token; call it again with isErr once the rcode is known.
func (rl *rateLimiter) allow(src netip.Addr, isErr bool) bool {
	if rl == nil {
		return true
	}
	k := prefixOf(src)
	sh := &rl.shards[(uint(k[7])^uint(k[6])*7^uint(k[5])*31^uint(k[2]))%uint(len(rl.shards))]
	now := rl.clock.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[k]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			clear(sh.buckets)
		}
		b = &bucket{tokens: rl.qps, errTokens: rl.errQPS, last: now}
		sh.buckets[k] = b
	}
	if dt := float64(now-b.last) / 1e9; dt > 0 {
		b.tokens = min(rl.qps, b.tokens+dt*rl.qps)
		b.errTokens = min(rl.errQPS, b.errTokens+dt*rl.errQPS)
		b.last = now
	}
	if isErr {
		if b.errTokens < 1 {
			return false
		}
		b.errTokens--
		return true
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// coarseClock is a clock read with one atomic load, ticking every 10 ms:
// reading the real clock costs more than answering a cached query here.
type coarseClock struct {
	ns   atomic.Int64
	stop chan struct{}
}

func newCoarseClock() *coarseClock {
	c := &coarseClock{stop: make(chan struct{})}
	c.ns.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case now := <-t.C:
				c.ns.Store(now.UnixNano())
			}
		}
	}()
	return c
}

func (c *coarseClock) now() int64 { return c.ns.Load() }

func (c *coarseClock) close() { close(c.stop) }
