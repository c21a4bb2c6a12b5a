package registry

// shardedMap is an immutable map split into a fixed number of shards, so
// that a new version with a few keys changed copies only the shards those
// keys live in (plus an array of shard pointers), not the whole map. It is
// what lets one registry change cost work in proportion to the change while
// readers keep reading the old version without locks.
type shardedMap[K comparable, V any] struct {
	shards *[mapShards]map[K]V
	hash   func(K) uint32
	n      int
}

const mapShards = 256

func newShardedMap[K comparable, V any](hash func(K) uint32) shardedMap[K, V] {
	return shardedMap[K, V]{shards: new([mapShards]map[K]V), hash: hash}
}

// Get returns the value stored under k.
func (m shardedMap[K, V]) Get(k K) (V, bool) {
	if m.shards == nil {
		var zero V
		return zero, false
	}
	v, ok := m.shards[m.hash(k)%mapShards][k]
	return v, ok
}

// Len is the number of entries.
func (m shardedMap[K, V]) Len() int { return m.n }

// Range calls fn for every entry, in no particular order, until fn returns false.
func (m shardedMap[K, V]) Range(fn func(K, V) bool) {
	if m.shards == nil {
		return
	}
	for _, s := range m.shards {
		for k, v := range s {
			if !fn(k, v) {
				return
			}
		}
	}
}

// mapEditor makes a new version of a shardedMap. Each shard is copied at
// most once per editor, however many of its keys change.
type mapEditor[K comparable, V any] struct {
	m      shardedMap[K, V]
	copied [mapShards]bool
}

// edit starts a new version of m; m itself is never changed.
func (m shardedMap[K, V]) edit() *mapEditor[K, V] {
	shards := new([mapShards]map[K]V)
	if m.shards != nil {
		*shards = *m.shards
	}
	return &mapEditor[K, V]{m: shardedMap[K, V]{shards: shards, hash: m.hash, n: m.n}}
}

func (e *mapEditor[K, V]) shard(k K) map[K]V {
	i := e.m.hash(k) % mapShards
	if !e.copied[i] {
		old := e.m.shards[i]
		s := make(map[K]V, len(old)+1)
		for k, v := range old {
			s[k] = v
		}
		e.m.shards[i] = s
		e.copied[i] = true
	}
	return e.m.shards[i]
}

func (e *mapEditor[K, V]) Set(k K, v V) {
	s := e.shard(k)
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
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
