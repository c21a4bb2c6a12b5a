package registry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

func TestShardedMapEmpty(t *testing.T) {
	m := newShardedMap[string, int](hashString)
	if v, ok := m.Get("a"); ok || v != 0 {
		t.Errorf("Get on empty map = %v, %v", v, ok)
	}
	if m.Len() != 0 {
		t.Errorf("Len = %d", m.Len())
	}
	m.Range(func(string, int) bool { t.Error("Range called fn on an empty map"); return true })

	// The zero value reads as empty too.
	var z shardedMap[string, int]
	if _, ok := z.Get("a"); ok || z.Len() != 0 {
		t.Error("zero shardedMap is not empty")
	}
	z.Range(func(string, int) bool { t.Error("Range called fn on a zero map"); return true })
}

func TestShardedMapEdit(t *testing.T) {
	v0 := newShardedMap[string, int](hashString)
	e := v0.edit()
	e.Set("a", 1)
	e.Set("b", 2)
	e.Set("a", 3)  // overwrite: counted once
	e.Delete("zz") // absent: no-op
	v1 := e.Done()
	if v1.Len() != 2 {
		t.Errorf("Len = %d, want 2", v1.Len())
	}
	if v, ok := v1.Get("a"); !ok || v != 3 {
		t.Errorf("Get(a) = %v, %v; want 3", v, ok)
	}
	if got := collect(v1); !maps.Equal(got, map[string]int{"a": 3, "b": 2}) {
		t.Errorf("Range = %v", got)
	}

	e = v1.edit()
	e.Delete("a")
	e.Delete("a") // twice: counted once
	e.Set("c", 4)
	e.Delete("c") // set then deleted in one edit
	e.Set("d", 5)
	v2 := e.Done()
	if got := collect(v2); !maps.Equal(got, map[string]int{"b": 2, "d": 5}) || v2.Len() != 2 {
		t.Errorf("v2 = %v (Len %d)", got, v2.Len())
	}
	// Older versions are untouched.
	if got := collect(v1); !maps.Equal(got, map[string]int{"a": 3, "b": 2}) || v1.Len() != 2 {
		t.Errorf("v1 changed to %v (Len %d)", got, v1.Len())
	}
	if v0.Len() != 0 || len(collect(v0)) != 0 {
		t.Errorf("v0 changed to %v", collect(v0))
	}

	// Range stops when fn returns false.
	calls := 0
	v2.Range(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Range called fn %d times after it returned false", calls)
	}
}

// TestShardedMapSharing checks the point of the structure: a new version
// copies only the shards its edits touch and shares the rest.
func TestShardedMapSharing(t *testing.T) {
	v1 := newShardedMap[string, int](hashString).edit()
	for i := range 10000 {
		v1.Set(fmt.Sprint("key", i), i)
	}
	old := v1.Done()
	e := old.edit()
	e.Set("key1", -1)
	e.Set("key2", -2)
	e.Delete("key3")
	e.Set("key1", -3) // same shard again: not copied twice
	next := e.Done()

	// 10,000 keys: maxShards shards of about 39.
	if len(old.shards) != maxShards || len(next.shards) != maxShards {
		t.Fatalf("%d and %d shards for 10,000 keys, want %d", len(old.shards), len(next.shards), maxShards)
	}
	touched := map[uint32]bool{}
	for _, k := range []string{"key1", "key2", "key3"} {
		touched[shardIndex(hashString(k), old.bits)] = true
	}
	copied := 0
	for i := range len(old.shards) {
		same := reflect.ValueOf(old.shards[i]).UnsafePointer() == reflect.ValueOf(next.shards[i]).UnsafePointer()
		if touched[uint32(i)] == same {
			t.Errorf("shard %d: touched=%v but shared=%v", i, touched[uint32(i)], same)
		}
		if !same {
			copied++
		}
	}
	if copied != len(touched) {
		t.Errorf("%d shards copied, want %d", copied, len(touched))
	}
	if v, _ := old.Get("key1"); v != 1 {
		t.Errorf("old key1 = %d", v)
	}
	if v, _ := next.Get("key1"); v != -3 {
		t.Errorf("new key1 = %d", v)
	}
	if old.Len() != 10000 || next.Len() != 9999 {
		t.Errorf("Len old=%d new=%d", old.Len(), next.Len())
	}
}

// TestShardedMapProperty runs random edits against a plain map, keeping every
// version, and checks that each version still matches the plain map as it was
// when that version was made.
func TestShardedMapProperty(t *testing.T) {
	hashes := map[string]func(int) uint32{
		"spread": func(k int) uint32 { return uint32(k) * 2654435761 },
		"clash":  func(k int) uint32 { return uint32(k % 3) }, // three shards only
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			type version struct {
				m    shardedMap[int, int]
				want map[int]int
			}
			cur := newShardedMap[int, int](hash)
			plain := map[int]int{}
			var versions []version
			for round := range 300 {
				e := cur.edit()
				for range rng.IntN(20) {
					k := rng.IntN(200)
					switch rng.IntN(3) {
					case 0, 1:
						v := rng.Int()
						e.Set(k, v)
						plain[k] = v
					case 2:
						e.Delete(k)
						delete(plain, k)
					}
				}
				cur = e.Done()
				versions = append(versions, version{cur, maps.Clone(plain)})
				if round%50 == 49 {
					for i, v := range versions {
						checkVersion(t, fmt.Sprint("version ", i), v.m, v.want)
					}
				}
			}
		})
	}
}

func checkVersion(t *testing.T, what string, m shardedMap[int, int], want map[int]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("%s: Len = %d, want %d", what, m.Len(), len(want))
	}
	got := map[int]int{}
	m.Range(func(k, v int) bool { got[k] = v; return true })
	if !maps.Equal(got, want) {
		t.Fatalf("%s: Range = %v, want %v", what, got, want)
	}
	for k := range 200 {
		v, ok := m.Get(k)
		wv, wok := want[k]
		if ok != wok || v != wv {
			t.Fatalf("%s: Get(%d) = %v, %v; want %v, %v", what, k, v, ok, wv, wok)
		}
	}
}

func collect(m shardedMap[string, int]) map[string]int {
	out := map[string]int{}
	m.Range(func(k string, v int) bool { out[k] = v; return true })
	return out
}

// The hash functions must spread the keys the registry actually has over
// the shards; one that did not would make every edit copy a huge shard.
func TestHashSpread(t *testing.T) {
	check := func(what string, n int, shardOf func(i int) uint32) {
		t.Helper()
		used := map[uint32]int{}
		for i := range n {
			used[shardIndex(shardOf(i), maxShardBits)]++
		}
		worst := 0
		for _, c := range used {
			worst = max(worst, c)
		}
		// Perfect spread puts n/256 in each shard; allow 4x that.
		if limit := 4 * max(1, n/maxShards); worst > limit {
			t.Errorf("%s: %d keys, %d shards used, fullest holds %d (limit %d)", what, n, len(used), worst, limit)
		}
	}
	check("org names", 5000, func(i int) uint32 { return hashString(fmt.Sprintf("org-%d", i)) })
	check("app names", 2000, func(i int) uint32 { return hashString(fmt.Sprintf("app%d", i)) })
	check("org networks", 5000, func(i int) uint32 {
		return hashNetKey(netKeyOf(netip.MustParsePrefix(fmt.Sprintf("fdaa:0:%x::/48", i)).Addr()))
	})
	check("machine addresses", 20000, func(i int) uint32 {
		return hashAddr(netip.MustParseAddr(fmt.Sprintf("fdaa:0:18:a7b:%x:%x:0:2", i/256, i%256)))
	})
	check("random machine addresses", 20000, func(i int) uint32 {
		r := rand.New(rand.NewPCG(uint64(i), 0))
		return hashAddr(netip.MustParseAddr(fmt.Sprintf("fdaa:0:18:a7b:%x:%x:%x:2", r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16))))
	})
}

// TestShardedMapGrows: a map has one shard while small and more as it grows,
// never over 2·shardTarget entries in a shard below maxShards shards, and
// an edit after growing still shares the shards it does not touch.
func TestShardedMapGrows(t *testing.T) {
	m := newShardedMap[int, int](func(k int) uint32 {
		x := uint32(k)
		x ^= x >> 16
		x *= 0x7feb352d
		return x ^ x>>15
	})
	want := map[int]int{}
	for n := 0; n < 100000; {
		e := m.edit()
		for range 1 + n/3 {
			e.Set(n, -n)
			want[n] = -n
			n++
		}
		m = e.Done()
		if len(m.shards) != 1<<m.bits {
			t.Fatalf("%d entries: %d shards, bits %d", m.Len(), len(m.shards), m.bits)
		}
		if m.Len() <= 2*shardTarget && len(m.shards) != 1 {
			t.Fatalf("%d entries in %d shards, want 1", m.Len(), len(m.shards))
		}
		for i, s := range m.shards {
			if len(m.shards) < maxShards && len(s) > 4*shardTarget {
				t.Fatalf("%d entries: shard %d of %d holds %d", m.Len(), i, len(m.shards), len(s))
			}
		}
	}
	if len(m.shards) != maxShards {
		t.Fatalf("%d entries in %d shards, want %d", m.Len(), len(m.shards), maxShards)
	}
	got := map[int]int{}
	m.Range(func(k, v int) bool { got[k] = v; return true })
	if !maps.Equal(got, want) {
		t.Fatal("contents differ after growing")
	}
	e := m.edit()
	e.Set(1, 1)
	next := e.Done()
	shared := 0
	for i := range next.shards {
		if reflect.ValueOf(m.shards[i]).UnsafePointer() == reflect.ValueOf(next.shards[i]).UnsafePointer() {
			shared++
		}
	}
	if shared != maxShards-1 {
		t.Errorf("%d of %d shards shared after one edit", shared, maxShards)
	}
}

// An editor copies nothing until it changes something: the org builder
// opens one on the org's addresses for every event, and most events (a
// start, a stop) leave them as they are.
func TestShardedMapEditWithoutChangeCopiesNothing(t *testing.T) {
	e := newShardedMap[string, int](hashString).edit()
	for i := range 1000 {
		e.Set(fmt.Sprint("key", i), i)
	}
	m := e.Done()
	e = m.edit()
	e.Delete("absent")
	if v, ok := e.m.Get("key1"); !ok || v != 1 {
		t.Fatalf("Get through the editor = %v, %v", v, ok)
	}
	next := e.Done()
	if &next.shards[0] != &m.shards[0] {
		t.Error("an edit that changed nothing copied the shard list")
	}
	e = next.edit()
	e.Set("key1", -1)
	after := e.Done()
	if &after.shards[0] == &m.shards[0] {
		t.Error("an edit that changed a key shares the shard list with the old version")
	}
	if v, _ := m.Get("key1"); v != 1 {
		t.Errorf("old version changed: key1 = %d", v)
	}
}
