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

// evictSample is how many entries an eviction looks at to choose a
// victim: the one expiring first among them (expired ones go at once). A
// sample keeps inserts O(1) without the bookkeeping of an LRU.
const evictSample = 8

// entryOverhead is what an entry costs beyond its packed reply and its key:
// the entry itself, its map slot and the string header, rounded up. It
// keeps a cache of tiny replies from holding far more than its bytes.
const entryOverhead = 128

// cache holds upstream replies until their TTL runs out, one part per org:
// an org sees only what it asked itself (no other org's lookups, their
// timing or their letter case). Replies are kept packed (wire format), so
// their memory is their length, and the bound is in bytes.
//
// When full, an insert evicts from the org that holds the most (bytes for
// the byte bound, entries for the entry bound), the inserting org
// included: an org filling the cache evicts its own entries once it holds
// more than any other, so every org keeps at least an equal share of the
// cache whatever the others ask.
type cache struct {
	mu         sync.Mutex
	maxBytes   int
	maxEntries int
	maxMsg     int
	bytes      int
	entries    int
	orgs       map[string]*orgCache
}

type orgCache struct {
	bytes   int
	entries map[string]*entry
}

type entry struct {
	packed  []byte
	cost    int
	stored  time.Time
	expires time.Time
}

func newCache(maxBytes, maxEntries, maxMsg int) *cache {
	return &cache{maxBytes: maxBytes, maxEntries: maxEntries, maxMsg: min(maxMsg, maxBytes), orgs: make(map[string]*orgCache)}
}

// cacheKey is the question, lowercased (names are case-insensitive and
// clients randomise case), with the CD and DO bits, which change what an
// upstream returns. The org is not in it: each org has its own map.
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

// usage returns the number of cached replies and the bytes they cost.
func (c *cache) usage() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries, c.bytes
}

// orgUsage is usage for one org.
func (c *cache) orgUsage(org string) (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if oc := c.orgs[org]; oc != nil {
		return len(oc.entries), oc.bytes
	}
	return 0, 0
}

// get returns org's cached reply with every TTL lowered by the time it has
// spent here, or nil. The reply is freshly unpacked: the caller may change
// it.
func (c *cache) get(org, key string, now time.Time) *dns.Msg {
	c.mu.Lock()
	var e *entry
	if oc := c.orgs[org]; oc != nil {
		e = oc.entries[key]
		if e != nil && !now.Before(e.expires) {
			c.remove(org, oc, key, e)
			e = nil
		}
	}
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	r := new(dns.Msg)
	if err := r.Unpack(e.packed); err != nil {
		return nil // cannot happen: we packed it
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, s := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range s {
			h := rr.Header()
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return r
}

// put caches r for org for as long as its TTLs allow. Replies that may not
// be cached, or that are longer than the largest cacheable reply, are
// ignored; put reports whether r was cached.
func (c *cache) put(org, key string, r *dns.Msg, now time.Time) bool {
	ttl, ok := cacheTTL(r)
	if !ok || ttl == 0 {
		return false
	}
	// Kept without OPT: the server answers with its own.
	m := *r
	m.Extra = nil
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
	m.Compress = true
	packed, err := m.Pack()
	if err != nil || len(packed) > c.maxMsg {
		return false
	}
	packed = packed[:len(packed):len(packed)]
	e := &entry{packed: packed, cost: len(packed) + len(key) + entryOverhead, stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
	if e.cost > c.maxBytes {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	oc := c.orgs[org]
	if oc == nil {
		oc = &orgCache{entries: make(map[string]*entry)}
		c.orgs[org] = oc
	}
	if old := oc.entries[key]; old != nil {
		c.remove(org, oc, key, old)
	}
	for c.bytes+e.cost > c.maxBytes {
		c.evict(now, func(o *orgCache) int { return o.bytes })
	}
	for c.entries+1 > c.maxEntries {
		c.evict(now, func(o *orgCache) int { return len(o.entries) })
	}
	if c.orgs[org] == nil { // evicted to nothing and dropped
		c.orgs[org] = oc
	}
	oc.entries[key] = e
	oc.bytes += e.cost
	c.bytes += e.cost
	c.entries++
	return true
}

func (c *cache) remove(org string, oc *orgCache, key string, e *entry) {
	delete(oc.entries, key)
	oc.bytes -= e.cost
	c.bytes -= e.cost
	c.entries--
	if len(oc.entries) == 0 {
		delete(c.orgs, org)
	}
}

// evict drops one entry of the org holding the most by size: an expired
// one if the sample finds one, else the one expiring soonest in the
// sample. Map iteration starts at a random place, which makes the sample
// random. The caller holds c.mu and the cache is not empty.
func (c *cache) evict(now time.Time, size func(*orgCache) int) {
	var victimOrg string
	var oc *orgCache
	for org, o := range c.orgs {
		if oc == nil || size(o) > size(oc) {
			victimOrg, oc = org, o
		}
	}
	var victim string
	var ve *entry
	n := 0
	for k, e := range oc.entries {
		if !now.Before(e.expires) {
			victim, ve = k, e
			break
		}
		if ve == nil || e.expires.Before(ve.expires) {
			victim, ve = k, e
		}
		if n++; n == evictSample {
			break
		}
	}
	c.remove(victimOrg, oc, victim, ve)
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
