package registry

import (
	"cmp"
	"math/bits"
	"slices"
)

// shardedMap is an immutable map split into shards, so that a new version
// with a few keys changed copies only the shards those keys live in (plus
// the slice of shard pointers), not the whole map. It is what lets one
// registry change cost work in proportion to the change while readers keep
// reading the old version without locks.
//
// The number of shards follows the size: a power of two, about one shard
// per shardTarget entries, at most maxShards. A small map is one shard, so
// an org of a few machines does not pay for 256 nearly empty shards (meshdns
// keeps two of these per org: apps and addresses). A change copies one
// shard: at most 2·shardTarget entries in a map below
// maxShards·shardTarget entries, n/maxShards beyond.
//
// shardTarget is 16: the maps of orgs and networks (one entry per org)
// are rebuilt on every event, so with 64 an event in a registry of 100
// orgs copied two maps of 100 entries. 16 made one machine event 27%
// faster and 31% smaller (BenchmarkApplyOneMachine, geomean of its five
// shapes) for 1.6% more heap per key (BenchmarkLoadScaleShape).
type shardedMap[K comparable, V any] struct {
	shards [][]entry[K, V] // len is a power of two; nil until the first Set
	bits   uint8           // len(shards) == 1<<bits
	hash   func(K) uint32
	n      int
}

// entry is one key of a shard. A shard is a slice of entries sorted by
// hash: copying one for an edit is one allocation and a memmove, where a
// Go map of the same entries costs a table and every key rehashed and
// reinserted (in the fleet benchmark's profile, building the copied maps
// was a fifth of all the hosts' CPU). Lookups binary-search the hash.
type entry[K comparable, V any] struct {
	h uint32
	k K
	v V
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

// find returns the index of k (hash h) in shard s and true, or false and
// where k would be inserted: after the entries of the same hash, so that
// find's scan of them sees it.
func find[K comparable, V any](s []entry[K, V], h uint32, k K) (int, bool) {
	lo, hi := 0, len(s)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s[mid].h < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	i := lo
	for ; i < len(s) && s[i].h == h; i++ {
		if s[i].k == k {
			return i, true
		}
	}
	return i, false
}

// Get returns the value stored under k.
func (m shardedMap[K, V]) Get(k K) (V, bool) {
	if m.shards == nil {
		var zero V
		return zero, false
	}
	h := m.hash(k)
	s := m.shards[shardIndex(h, m.bits)]
	if i, ok := find(s, h, k); ok {
		return s[i].v, true
	}
	var zero V
	return zero, false
}

// Len is the number of entries.
func (m shardedMap[K, V]) Len() int { return m.n }

// Range calls fn for every entry, in no particular order, until fn returns false.
func (m shardedMap[K, V]) Range(fn func(K, V) bool) {
	for _, s := range m.shards {
		for i := range s {
			if !fn(s[i].k, s[i].v) {
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
	m       shardedMap[K, V]
	copied  [maxShards / 64]uint64 // bit i: shard i is this editor's own
	ownList bool                   // m.shards (the list) is this editor's own
}

// edit starts a new version of m; m itself is never changed. Nothing is
// copied until the first change: an editor that changes nothing returns m
// as it was.
func (m shardedMap[K, V]) edit() *mapEditor[K, V] {
	e := &mapEditor[K, V]{m: m}
	if m.shards == nil {
		e.m.shards = [][]entry[K, V]{nil}
		e.m.bits = 0
		e.ownList = true
	}
	return e
}

// own makes shard i the editor's own copy, with room for one more entry.
func (e *mapEditor[K, V]) own(i uint32) {
	if !e.ownList {
		e.m.shards = append([][]entry[K, V](nil), e.m.shards...)
		e.ownList = true
	}
	if e.copied[i/64]&(1<<(i%64)) == 0 {
		old := e.m.shards[i]
		s := make([]entry[K, V], len(old), len(old)+1)
		copy(s, old)
		e.m.shards[i] = s
		e.copied[i/64] |= 1 << (i % 64)
	}
}

func (e *mapEditor[K, V]) Set(k K, v V) {
	h := e.m.hash(k)
	si := shardIndex(h, e.m.bits)
	i, ok := find(e.m.shards[si], h, k)
	e.own(si)
	s := e.m.shards[si]
	if ok {
		s[i].v = v
		return
	}
	e.m.shards[si] = slices.Insert(s, i, entry[K, V]{h: h, k: k, v: v})
	e.m.n++
	if e.m.n > 2*shardTarget<<e.m.bits && e.m.bits < maxShardBits {
		// Grown past its shards: spread it over more. This copies the
		// whole map, but only each time it has doubled at least, so it
		// adds a constant amount of work per entry added.
		e.reshard(shardBits(e.m.n))
	}
}

// reshard spreads the entries over 1<<b new shards, all of them the editor's own.
func (e *mapEditor[K, V]) reshard(b uint8) {
	shards := make([][]entry[K, V], 1<<b)
	per := e.m.n>>b + 1
	for i := range shards {
		shards[i] = make([]entry[K, V], 0, per+per/4)
	}
	for _, s := range e.m.shards {
		for _, en := range s {
			i := shardIndex(en.h, b)
			shards[i] = append(shards[i], en)
		}
	}
	for _, s := range shards {
		slices.SortStableFunc(s, func(x, y entry[K, V]) int { return cmp.Compare(x.h, y.h) })
	}
	e.m.shards, e.m.bits = shards, b
	e.ownList = true
	for i := range e.copied {
		e.copied[i] = ^uint64(0)
	}
}

func (e *mapEditor[K, V]) Delete(k K) {
	h := e.m.hash(k)
	si := shardIndex(h, e.m.bits)
	i, ok := find(e.m.shards[si], h, k)
	if !ok {
		return
	}
	e.own(si)
	e.m.shards[si] = slices.Delete(e.m.shards[si], i, i+1)
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
