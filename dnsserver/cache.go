package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// The answer cache holds packed replies, built for the lowercased question,
// and serves them by copying the bytes and patching in the query's id,
// flags and the question's exact case. Each UDP worker owns one cache, so
// lookups take no lock and the registry's writers never wait on it.
//
// An entry stays valid while what it was computed from is unchanged:
//   - a positive answer under an app (<...>.<app>.internal, <app>.flycast)
//     depends on that app's *registry.App, which is replaced only when the
//     app changes — a change to another app leaves it valid;
//   - answers that carry the zone's SOA (negative answers, SOA queries) and
//     answers about the whole org (_apps, _instances, _peer..., reverse
//     names) depend on the org's generation;
//   - AAAA and SRV answers are ordered for the asker, so their key holds the asker's
//     address and region, and they depend on the registry's region table;
//   - every entry depends on the server's settings (TTLs).

// The caches of all workers share one byte budget (Config.AnswerCacheBytes,
// default DefaultAnswerCacheBytes): each worker owns its map, so lookups
// take no lock, and charges what it stores to an atomic counter of the
// server. When the budget is spent, a worker makes room by evicting from
// its own map the least recently used of a few entries sampled at random.
// A worker that holds less than its fair share (budget / workers) and
// finds no room raises a flag; the workers above their share then shrink
// to it, so one worker flooded with distinct names cannot keep the whole
// budget from the others. Replies are cached per EDNS size class
// (ednsBucket), not per size, so sweeping sizes adds at most four entries
// per name.

// DefaultAnswerCacheBytes is the answer caches' budget, all workers together.
const DefaultAnswerCacheBytes = 64 << 20

// entryOverhead is what an entry costs beyond its key, packed reply and
// name: the cacheEntry itself, its map slot (key header, pointer, control
// byte, free slots) and allocation rounding; measured by
// TestAnswerCacheBudget.
const entryOverhead = 256

// cacheSamples is how many entries eviction looks at to evict one.
const cacheSamples = 5

type cacheEntry struct {
	packed  []byte
	info    QueryInfo // what to tell the Observer on a hit
	cfg     *Config
	orgGen  uint64        // used when app is nil
	app     *registry.App // positive app-scoped answers
	regions uintptr       // identity of the region table, for ordered answers
	ordered bool
	// cookie marks a reply to a query with a COOKIE option: packed ends
	// with the COOKIE option's 24 bytes, filled in for each query.
	cookie bool
	cost   int64  // bytes charged to the budget
	used   uint32 // the worker's tick when last used, for eviction
}

// cacheBudget is the byte budget the workers' caches share.
type cacheBudget struct {
	used atomic.Int64
	// pressure is raised by a worker below its fair share that found no
	// room; workers above theirs shrink when they see it.
	pressure atomic.Bool
}

type answerCache struct {
	entries map[string]*cacheEntry
	budget  *cacheBudget
	bytes   int64  // what this worker's entries are charged
	fair    int64  // budget / workers, as of the last store
	tick    uint32 // counts uses, for eviction
}

func newAnswerCache(b *cacheBudget) *answerCache {
	return &answerCache{entries: make(map[string]*cacheEntry, 1024), budget: b}
}

// get returns the entry under key, marked as used, or nil.
func (c *answerCache) get(key []byte) *cacheEntry {
	if c.bytes > c.fair && c.budget.pressure.Load() {
		c.shrink(c.fair)
		c.budget.pressure.Store(false)
	}
	e := c.entries[string(key)]
	if e != nil {
		c.tick++
		e.used = c.tick
	}
	return e
}

// put stores e under key, within the shared budget limit (<= 0: no cache)
// of which this worker's fair share is limit/workers. An entry larger than
// a fair share is not stored.
func (c *answerCache) put(key []byte, e *cacheEntry, limit int64, workers int) {
	if old := c.entries[string(key)]; old != nil {
		c.remove(string(key), old)
	}
	if limit <= 0 {
		c.shrink(0)
		return
	}
	c.fair = limit / int64(max(workers, 1))
	e.cost = int64(len(key)+cap(e.packed)+len(e.info.Name)) + entryOverhead
	if e.cost > c.fair {
		return
	}
	for {
		u := c.budget.used.Load()
		if u+e.cost <= limit {
			if c.budget.used.CompareAndSwap(u, u+e.cost) {
				break
			}
			continue
		}
		if c.bytes+e.cost <= c.fair {
			c.budget.pressure.Store(true)
		}
		if len(c.entries) == 0 {
			return // the others hold the budget until they shrink
		}
		c.evictOne()
	}
	c.tick++
	e.used = c.tick
	c.bytes += e.cost
	c.entries[string(key)] = e
}

func (c *answerCache) remove(key string, e *cacheEntry) {
	delete(c.entries, key)
	c.bytes -= e.cost
	c.budget.used.Add(-e.cost)
}

// evictOne removes the least recently used of a few entries sampled at
// random (map iteration starts at a random place).
func (c *answerCache) evictOne() {
	var (
		victim string
		ve     *cacheEntry
		n      int
	)
	for k, e := range c.entries {
		if ve == nil || int32(e.used-ve.used) < 0 {
			victim, ve = k, e
		}
		if n++; n == cacheSamples {
			break
		}
	}
	if ve != nil {
		c.remove(victim, ve)
	}
}

// shrink evicts until the worker's entries cost at most target.
func (c *answerCache) shrink(target int64) {
	if target <= 0 {
		if len(c.entries) > 0 {
			c.budget.used.Add(-c.bytes)
			c.bytes = 0
			c.entries = make(map[string]*cacheEntry) // drops the old tables too
		}
		return
	}
	for c.bytes > target && len(c.entries) > 0 {
		c.evictOne()
	}
}

func regionsID(snap *registry.Snapshot) uintptr {
	return reflect.ValueOf(snap.Regions()).Pointer()
}

// cacheKey builds the key of a query into buf: org, lowered name, type,
// reply size limit (a size class), EDNS presence, DO bit and COOKIE
// presence, the transport, and for AAAA and SRV the asker's address and region (the order
// depends on them).
func cacheKey(buf []byte, org *registry.Org, name []byte, wq *wireQuery, size int, tr Transport, src netip.Addr, region string) []byte {
	buf = append(buf[:0], org.Name...)
	buf = append(buf, 0)
	buf = append(buf, name...)
	buf = binary.BigEndian.AppendUint16(buf, wq.qtype)
	buf = binary.BigEndian.AppendUint16(buf, uint16(size))
	var f byte
	if wq.hasOPT {
		f |= 1
	}
	if wq.do {
		f |= 2
	}
	if wq.cookieLen != 0 {
		f |= 4
	}
	if tr == TCP {
		// TCP's size class is "unlimited": never mixed with UDP's 65535
		// class, whose replies may carry TC.
		f |= 8
	}
	buf = append(buf, f)
	if ordered(wq.qtype) {
		a := src.As16()
		buf = append(buf, a[:]...)
		buf = append(buf, region...)
	}
	return buf
}

// ordered reports whether answers of qtype are ordered for the asker:
// AAAA and SRV (nearest first, ties by the asker's address).
func ordered(qtype uint16) bool { return zones.OrderedForAsker(qtype) }

// valid reports whether e still answers correctly for this snapshot.
func (e *cacheEntry) valid(cfg *Config, snap *registry.Snapshot, org *registry.Org, appLabel []byte) bool {
	if e.cfg != cfg {
		return false
	}
	if e.ordered && e.regions != regionsID(snap) {
		return false
	}
	if e.app != nil {
		// The label is only looked up, never kept: no need to copy it.
		return org.App(unsafe.String(unsafe.SliceData(appLabel), len(appLabel))) == e.app
	}
	return e.orgGen == org.Gen
}

// cacheable says whether a reply may be cached at all: only authoritative
// answers and NXDOMAINs from our zones (not _whoami, which describes the
// asker and never reaches here), never forwarded, refused or failed ones.
func cacheable(m *dns.Msg) bool {
	return m.Authoritative && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError)
}
