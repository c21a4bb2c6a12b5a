package forward

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache TTL bounds, as CoreDNS's cache uses: an upstream that hands out
// day-long TTLs must not pin an answer here that long, and a negative
// answer (a name not there yet) is held for less.
const (
	maxTTL    = 3600
	maxNegTTL = 1800
)

// evictSample is how many entries an insert into a full cache looks at to
// choose a victim: the one expiring first among them (expired ones go at
// once). A sample keeps inserts O(1) without the bookkeeping of an LRU.
const evictSample = 8

// cache holds upstream replies until their TTL runs out.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*entry
}

type entry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[string]*entry, min(max, 1024))}
}

// cacheKey is the question, lowercased (names are case-insensitive and
// clients randomise case), with the CD and DO bits, which change what an
// upstream returns.
func cacheKey(req *dns.Msg) string {
	q := req.Question[0]
	var b strings.Builder
	b.Grow(len(q.Name) + 5)
	b.WriteString(strings.ToLower(q.Name))
	var tail [5]byte
	binary.BigEndian.PutUint16(tail[0:2], q.Qtype)
	binary.BigEndian.PutUint16(tail[2:4], q.Qclass)
	if req.CheckingDisabled {
		tail[4] |= 1
	}
	if opt := req.IsEdns0(); opt != nil && opt.Do() {
		tail[4] |= 2
	}
	b.Write(tail[:])
	return b.String()
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// get returns a copy of the cached reply with every TTL lowered by the
// time it has spent here, or nil.
func (c *cache) get(key string, now time.Time) *dns.Msg {
	c.mu.Lock()
	e := c.entries[key]
	if e != nil && !now.Before(e.expires) {
		delete(c.entries, key)
		e = nil
	}
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	r := e.msg.Copy()
	for _, s := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range s {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return r
}

// put caches r for as long as its TTLs allow; replies that may not be
// cached are ignored.
func (c *cache) put(key string, r *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(r)
	if !ok || ttl == 0 {
		return
	}
	e := &entry{msg: r, stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[key] = e
}

// evict drops one entry: an expired one if the sample finds one, else the
// one expiring soonest in the sample. Map iteration starts at a random
// place, which makes the sample random.
func (c *cache) evict(now time.Time) {
	var victim string
	var soonest time.Time
	n := 0
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			victim = k
			break
		}
		if n == 0 || e.expires.Before(soonest) {
			victim, soonest = k, e.expires
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(c.entries, victim)
}

// cacheTTL is how long a reply may be cached, in seconds. Positive
// answers live as long as their shortest TTL (answer and authority);
// negative ones (NXDOMAIN, or NOERROR without an answer) by the SOA in
// the authority section: min(SOA TTL, SOA MINIMUM), RFC 2308 §5. Negative
// answers without an SOA, truncated replies and errors are not cached.
func cacheTTL(r *dns.Msg) (uint32, bool) {
	if r.Truncated {
		return 0, false
	}
	switch {
	case r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0:
		ttl := uint32(maxTTL)
		for _, s := range [][]dns.RR{r.Answer, r.Ns} {
			for _, rr := range s {
				ttl = min(ttl, rr.Header().Ttl)
			}
		}
		return ttl, true
	case r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError:
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				return min(soa.Hdr.Ttl, soa.Minttl, maxNegTTL), true
			}
		}
	}
	return 0, false
}
