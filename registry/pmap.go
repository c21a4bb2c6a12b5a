package registry

import "math/bits"

// shardedMap is an immutable map split into shards, so that a new version
// with a few keys changed copies only the shards those keys live in (plus
// the slice of shard pointers), not the whole map. It is what lets one
// registry change cost work in proportion to the change while readers keep
// reading the old version without locks.
//
// The number of shards follows the size: a power of two, about one shard
// per shardTarget entries, at most maxShards. A small map is one shard: a
// Go map costs a few hundred bytes however few entries it holds, and
// meshdns keeps two of these per org (apps and addresses), so 256 shards
// for an org of 100 machines cost about 300 bytes per machine in maps of
// one entry each. A change copies one shard: at most 2·shardTarget entries
// in a map below maxShards·shardTarget entries, n/maxShards beyond.
//
// shardTarget is 16: the maps of orgs and networks (one entry per org)
// are rebuilt on every event, so with 64 an event in a registry of 100
// orgs copied two maps of 100 entries. 16 made one machine event 27%
// faster and 31% smaller (BenchmarkApplyOneMachine, geomean of its five
// shapes) for 1.6% more heap per key (BenchmarkLoadScaleShape).
type shardedMap[K comparable, V any] struct {
	shards []map[K]V // len is a power of two; nil until the first Set
	bits   uint8     // len(shards) == 1<<bits
	hash   func(K) uint32
	n      int
}

const (
	maxShardBits = 8
	maxShards    = 1 << maxShardBits
	shardTarget  = 16 // see the type comment
)

func newShardedMap[K comparable, V any](hash func(K) uint32) shardedMap[K, V] {
	return shardedMap[K, V]{hash: hash}
}

// shardIndex picks the shard of hash h among 1<<b shards: the top bits of a
// multiplicative hash, so any number of shards gets well-mixed bits.
func shardIndex(h uint32, b uint8) uint32 {
	return (h * 0x9E3779B1) >> (32 - uint32(b)) // 0 when b is 0
}

// Get returns the value stored under k.
func (m shardedMap[K, V]) Get(k K) (V, bool) {
	if m.shards == nil {
		var zero V
		return zero, false
	}
	v, ok := m.shards[shardIndex(m.hash(k), m.bits)][k]
	return v, ok
}

// Len is the number of entries.
func (m shardedMap[K, V]) Len() int { return m.n }

// Range calls fn for every entry, in no particular order, until fn returns false.
func (m shardedMap[K, V]) Range(fn func(K, V) bool) {
	for _, s := range m.shards {
		for k, v := range s {
			if !fn(k, v) {
				return
			}
		}
	}
}

// shardBits is how many bits of shard index a map of n entries wants.
func shardBits(n int) uint8 {
	if n <= 2*shardTarget {
		return 0
	}
	return uint8(min(bits.Len(uint(n/shardTarget-1)), maxShardBits))
}

// mapEditor makes a new version of a shardedMap. Each shard is copied at
// most once per editor, however many of its keys change.
type mapEditor[K comparable, V any] struct {
	m      shardedMap[K, V]
	copied [maxShards / 64]uint64 // bit i: shard i is this editor's own
}

// edit starts a new version of m; m itself is never changed.
func (m shardedMap[K, V]) edit() *mapEditor[K, V] {
	e := &mapEditor[K, V]{m: m}
	if m.shards == nil {
		e.m.shards = []map[K]V{nil}
		e.m.bits = 0
	} else {
		e.m.shards = append([]map[K]V(nil), m.shards...)
	}
	return e
}

func (e *mapEditor[K, V]) shard(k K) map[K]V {
	i := shardIndex(e.m.hash(k), e.m.bits)
	if e.copied[i/64]&(1<<(i%64)) == 0 {
		old := e.m.shards[i]
		s := make(map[K]V, len(old)+1)
		for k, v := range old {
			s[k] = v
		}
		e.m.shards[i] = s
		e.copied[i/64] |= 1 << (i % 64)
	}
	return e.m.shards[i]
}

func (e *mapEditor[K, V]) Set(k K, v V) {
	s := e.shard(k)
	if _, ok := s[k]; !ok {
		e.m.n++
		if e.m.n > 2*shardTarget<<e.m.bits && e.m.bits < maxShardBits {
			// Grown past its shards: spread it over more. This copies
			// the whole map, but only each time it has doubled at least,
			// so it adds a constant amount of work per entry added.
			s[k] = v
			e.reshard(shardBits(e.m.n))
			return
		}
	}
	s[k] = v
}

// reshard spreads the entries over 1<<b new shards, all of them the editor's own.
func (e *mapEditor[K, V]) reshard(b uint8) {
	shards := make([]map[K]V, 1<<b)
	per := e.m.n>>b + 1
	for i := range shards {
		shards[i] = make(map[K]V, per+per/4)
	}
	for _, s := range e.m.shards {
		for k, v := range s {
			shards[shardIndex(e.m.hash(k), b)][k] = v
		}
	}
	e.m.shards, e.m.bits = shards, b
	for i := range e.copied {
		e.copied[i] = ^uint64(0)
	}
}

func (e *mapEditor[K, V]) Delete(k K) {
	if _, ok := e.m.Get(k); !ok {
		return
	}
	delete(e.shard(k), k)
	e.m.n--
}

// Done returns the new version. The editor must not be used afterwards.
func (e *mapEditor[K, V]) Done() shardedMap[K, V] { return e.m }

// hashString is FNV-1a; keys here are short labels.
func hashString(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
