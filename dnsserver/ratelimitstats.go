package dnsserver

import "sync/atomic"

// RateLimitStats counts the queries over a rate limit (Config.RateLimit,
// ErrorRateLimit) since the server started; a SIGHUP that changes the
// limits keeps the counts.
type RateLimitStats struct {
	// UDPDropped are UDP queries over a limit that got no reply;
	// UDPSlipped those that got a TC=1 reply with only the question
	// (every RateLimitSlip-th), so a real client retries over TCP.
	UDPDropped, UDPSlipped uint64
	// TCPClosed are TCP connections closed because a query on them was
	// over the limit.
	TCPClosed uint64
}

// limitCounts counts rate-limited queries in one shard per UDP reader, as
// metrics' cache lane does: the query path adds to an atomic no other core
// writes (no lock, no shared cache line, no allocation), and a scrape sums
// the shards. Shard 0 takes the general path and TCP, which are slow
// enough for a shared counter.
type limitCounts struct {
	shards [limitShards]limitShard
}

const limitShards = 16 // readers beyond this share shards (still correct)

type limitShard struct {
	dropped, slipped, closed atomic.Uint64
	_                        [64]byte // keep neighbouring shards off this cache line
}

// udp counts one UDP query over a limit, in reader's shard (0: none):
// slipped if it got a reply, else dropped.
func (c *limitCounts) udp(reader int, slipped bool) {
	sh := &c.shards[uint(reader)%limitShards]
	if slipped {
		sh.slipped.Add(1)
	} else {
		sh.dropped.Add(1)
	}
}

// tcpClosed counts one TCP connection closed over a limit.
func (c *limitCounts) tcpClosed() { c.shards[0].closed.Add(1) }

// RateLimitStats are the counts of queries over a rate limit.
func (s *Server) RateLimitStats() RateLimitStats {
	var st RateLimitStats
	for i := range s.limited.shards {
		sh := &s.limited.shards[i]
		st.UDPDropped += sh.dropped.Load()
		st.UDPSlipped += sh.slipped.Load()
		st.TCPClosed += sh.closed.Load()
	}
	return st
}
