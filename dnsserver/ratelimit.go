package dnsserver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// rateLimiter bounds the queries each source prefix (an IPv6 /64, an IPv4
// /24) may send per second, and separately the error answers (REFUSED,
// NXDOMAIN) it may receive, so one flooding prefix cannot starve the others
// nor use us to bounce error replies at a victim. Queries that carry a
// valid server cookie (cookie.go) come from the address they claim: they
// are counted in a bucket of their own per prefix, with the same limits,
// which spoofed traffic in the prefix's name cannot drain. Past a limit,
// every slip-th query gets a tiny TC=1 reply and the rest are dropped.
//
// Token buckets refill from a coarse clock. The table is sharded by a
// keyed hash of the whole key and each shard is bounded: when one is full,
// a few buckets are sampled and the one with the most tokens is evicted,
// whose source loses least by starting afresh; a drained flooder's bucket
// is kept however many new prefixes arrive.
type rateLimiter struct {
	qps, errQPS float64
	slip        uint32
	seed        maphash.Seed
	shards      [64]limiterShard
	clock       *coarseClock
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[prefixKey]*bucket
}

// prefixKey is a source prefix: 8 bytes of an IPv6 /64, or 3 of an IPv4
// /24; the last byte holds keyIPv4 and keyVerified.
type prefixKey [9]byte

const (
	keyIPv4 = 1 << iota
	keyVerified
)

type bucket struct {
	tokens, errTokens float64
	last              int64  // coarse clock, nanoseconds
	over              uint32 // queries over a limit, for the slip
}

// maxBucketsPerShard bounds memory under a flood of spoofed prefixes.
const maxBucketsPerShard = 4096

// evictSamples is how many buckets a full shard looks at to evict one.
const evictSamples = 8

func newRateLimiter(qps, errQPS, slip int, clock *coarseClock) *rateLimiter {
	if qps <= 0 {
		return nil
	}
	rl := &rateLimiter{qps: float64(qps), errQPS: float64(max(errQPS, 1)), slip: uint32(max(slip, 0)), seed: maphash.MakeSeed(), clock: clock}
	for i := range rl.shards {
		rl.shards[i].buckets = map[prefixKey]*bucket{}
	}
	return rl
}

func prefixOf(a netip.Addr, verified bool) prefixKey {
	var k prefixKey
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		copy(k[:3], b[:3])
		k[8] = keyIPv4
	} else {
		b := a.As16()
		copy(k[:8], b[:8])
	}
	if verified {
		k[8] |= keyVerified
	}
	return k
}

// verdict is what to do with a query: answer it, drop it, or slip it (a
// TC=1 reply with only the question).
type verdict uint8

const (
	pass verdict = iota
	drop
	slip
)

// allow takes one query token for src's prefix. isErr also takes an
// error-answer token; call it again with isErr once the rcode is known.
// It counts src as unverified and never slips.
func (rl *rateLimiter) allow(src netip.Addr, isErr bool) bool {
	return rl.check(src, false, isErr) == pass
}

// check is allow for a source that may be verified by a server cookie,
// and tells over-limit queries to slip from those to drop.
func (rl *rateLimiter) check(src netip.Addr, verified, isErr bool) verdict {
	if rl == nil {
		return pass
	}
	k := prefixOf(src, verified)
	sh := &rl.shards[maphash.Comparable(rl.seed, k)%uint64(len(rl.shards))]
	now := rl.clock.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[k]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			rl.evict(sh, now)
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
			return rl.over(b)
		}
		b.errTokens--
		return pass
	}
	if b.tokens < 1 {
		return rl.over(b)
	}
	b.tokens--
	return pass
}

func (rl *rateLimiter) over(b *bucket) verdict {
	b.over++
	if rl.slip > 0 && b.over%rl.slip == 0 {
		return slip
	}
	return drop
}

// evict removes one bucket of a full shard: of a few sampled at random
// (map iteration starts at a random place), the fullest once refilled to
// now, as its source would lose least by starting afresh.
func (rl *rateLimiter) evict(sh *limiterShard, now int64) {
	var victim prefixKey
	best, n := -1.0, 0
	for k, b := range sh.buckets {
		dt := max(0, float64(now-b.last)/1e9)
		score := min(rl.qps, b.tokens+dt*rl.qps)/rl.qps + min(rl.errQPS, b.errTokens+dt*rl.errQPS)/rl.errQPS
		if score > best {
			victim, best = k, score
		}
		if n++; n == evictSamples {
			break
		}
	}
	delete(sh.buckets, victim)
}

// overLimit is the general path's reply to a query over a rate limit: nil
// (dropped) or, for a slip, appendSlip's reply if the query is a plain
// query we can parse.
func (s *Server) overLimit(v verdict, raw []byte, src netip.Addr) []byte {
	if v != slip {
		s.limited.udp(0, false)
		return nil
	}
	var lower [255]byte
	wq, ok := parseQuery(raw, &lower)
	if !ok || wq.flags&(flagQR|flagOpcode) != 0 {
		s.limited.udp(0, false)
		return nil
	}
	s.limited.udp(0, true)
	return s.appendSlip(nil, raw, &wq, src)
}

// appendSlip appends the reply to a query over its rate limit that slips
// through: the header with TC set, the question, and, if the query had
// EDNS, our OPT with its COOKIE answered (a client that then sends the
// server cookie is verified and counted apart); no records. A real client
// retries over TCP; a spoofed victim gets a reply no larger than the query
// (plus the 16-byte server cookie when the query carried a client cookie).
func (s *Server) appendSlip(b, raw []byte, wq *wireQuery, src netip.Addr) []byte {
	b = append(b, raw[0:2]...)
	b = binary.BigEndian.AppendUint16(b, flagQR|flagTC|wq.flags&(flagRD|flagCD))
	var ar byte
	if wq.hasOPT {
		ar = 1
	}
	b = append(b, 0, 1, 0, 0, 0, 0, 0, ar)
	b = append(b, raw[12:wq.qEnd+4]...)
	if !wq.hasOPT {
		return b
	}
	b = append(b, 0, 0, 41)
	b = binary.BigEndian.AppendUint16(b, s.cfg.Load().UDPSize)
	var do byte
	if wq.do {
		do = 0x80
	}
	b = append(b, 0, 0, do, 0)
	if wq.cookieLen == 0 || wq.cookieBad {
		return append(b, 0, 0)
	}
	b = append(b, 0, 4+replyCookieLen, 0, optCookie, 0, replyCookieLen)
	n := len(b)
	b = append(b, make([]byte, replyCookieLen)...)
	opt := raw[wq.cookieOff : wq.cookieOff+wq.cookieLen]
	now := s.cookieNow()
	_, fresh := s.cookies.check(opt, src, now)
	s.cookies.reply(b[n:], opt, src, now, fresh)
	return b
}

// coarseClock is a clock read with one atomic load, ticking every 10 ms:
// reading the real clock costs more than answering a cached query here.
// Its goroutine runs from start (Server.Start) to close (Server.Shutdown);
// before start, now reads the real clock, so a server that is never
// started (New alone, HandlePacket in tests) leaves no goroutine behind.
// close stops the ticking and freezes the time; it may be called more
// than once, and a closed clock is not started again (tests freeze it so
// they can move time themselves).
type coarseClock struct {
	ns      atomic.Int64 // 0 until started or closed
	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	stopped bool
}

func newCoarseClock() *coarseClock { return &coarseClock{} }

// start starts the ticking, unless the clock runs or was closed.
func (c *coarseClock) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil || c.stopped {
		return
	}
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	c.ns.Store(time.Now().UnixNano())
	go func(stop, done chan struct{}) {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				c.ns.Store(now.UnixNano())
			}
		}
	}(c.stop, c.done)
}

func (c *coarseClock) now() int64 {
	if n := c.ns.Load(); n != 0 {
		return n
	}
	return realNow()
}

// realNow is the time before the clock starts; apart, so that now inlines.
func realNow() int64 { return time.Now().UnixNano() }

// close stops the ticking and freezes the time where it is.
func (c *coarseClock) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	if c.stop != nil {
		close(c.stop)
		<-c.done // no tick lands after close
	}
	c.ns.CompareAndSwap(0, time.Now().UnixNano())
}
