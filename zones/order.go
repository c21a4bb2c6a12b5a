package zones

import (
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/registry"
)

// unknownKm is the distance to a region missing from the table: it sorts
// after every known one.
var unknownKm = float32(math.Inf(1))

// origin measures distances from the asker's region during one query,
// remembering each region it has measured so that an answer costs at most
// one distance computation per distinct region, not per machine.
type origin struct {
	regs  Regions
	from  string
	known bool
	// fast is the asker's built-in index when the registry defines no
	// regions at all (the usual case): every distance is then a table
	// lookup. -1 otherwise.
	fast  int
	memo  [numBuiltin]float32
	have  [numBuiltin]bool
	extra []regionKm // codes outside the built-in table met so far
}

type regionKm struct {
	code string
	km   float32
}

func newOrigin(regs Regions, from string) origin {
	o := origin{regs: regs, from: from, fast: -1}
	_, _, o.known = regs.Coord(from)
	if o.known && len(regs.reg) == 0 {
		o.fast = builtinIndex(from)
	}
	return o
}

// km is the distance from the asker's region to code. When the asker's
// region is unknown every distance is 0, leaving the order to the hash.
func (o *origin) km(code string) float32 {
	if !o.known {
		return 0
	}
	i := builtinIndex(code)
	if o.fast >= 0 {
		if i < 0 {
			return unknownKm
		}
		return builtinKm[o.fast][i]
	}
	if i >= 0 {
		if !o.have[i] {
			o.memo[i], o.have[i] = o.measure(code), true
		}
		return o.memo[i]
	}
	for _, e := range o.extra {
		if e.code == code {
			return e.km
		}
	}
	d := o.measure(code)
	o.extra = append(o.extra, regionKm{code, d})
	return d
}

func (o *origin) measure(code string) float32 {
	d, ok := o.regs.DistanceKm(o.from, code)
	if !ok {
		return unknownKm
	}
	return d
}

// ranked is a machine with its sort key for one query.
type ranked struct {
	// key packs the distance (the IEEE bits of a non-negative float32 sort
	// like the number) above the top half of the hash, so most comparisons
	// are one integer compare.
	key  uint64
	hash uint64
	m    *registry.Machine
}

func rankKey(km float32, hash uint64) uint64 {
	return uint64(math.Float32bits(km))<<32 | hash>>32
}

// compareRanked orders nearest first, then by the tie hash; the id breaks
// the (astronomically rare) hash collision so the order is total.
func compareRanked(x, y ranked) int {
	switch {
	case x.key < y.key:
		return -1
	case x.key > y.key:
		return 1
	case x.hash < y.hash:
		return -1
	case x.hash > y.hash:
		return 1
	}
	return strings.Compare(x.m.ID, y.m.ID)
}

// rankOf is m with its sort key for an asker at o whose address hashes
// to seed (addrSeed).
func rankOf(m *registry.Machine, o *origin, seed uint64) ranked {
	h := tieHash(seed, m.ID)
	return ranked{key: rankKey(o.km(m.Region), h), hash: h, m: m}
}

// sortRanked sorts rs nearest first.
func sortRanked(rs []ranked) { slices.SortFunc(rs, compareRanked) }

// nearest returns the k nearest of rs, in order, reordering rs: a heap of
// the best k so far (the farthest on top) costs O(n log k) where sorting
// all would cost O(n log n).
func nearest(rs []ranked, k int) []ranked {
	h := rs[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for _, x := range rs[k:] {
		if compareRanked(x, h[0]) < 0 {
			h[0] = x
			siftDown(h, 0)
		}
	}
	sortRanked(h)
	return h
}

// siftDown restores the max-heap order of h below i.
func siftDown(h []ranked, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && compareRanked(h[c+1], h[c]) > 0 {
			c++
		}
		if compareRanked(h[c], h[i]) <= 0 {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// keepBest offers x to best, the nearest machines seen so far in order,
// holding at most limit: a top<N> answer needs only those, so it streams
// over the app's machines in a fixed buffer instead of sorting them all.
// Most machines lose against the current last at once.
func keepBest(best []ranked, x ranked, limit int) []ranked {
	n := len(best)
	if n == limit && compareRanked(x, best[n-1]) >= 0 {
		return best
	}
	j, _ := slices.BinarySearchFunc(best, x, compareRanked)
	if n < limit {
		best = best[:n+1]
	}
	copy(best[j+1:], best[j:len(best)-1])
	best[j] = x
	return best
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// addrSeed is FNV-1a 64 over the 16 bytes of the asker's address: the
// part of the tie hash shared by every machine of one query.
func addrSeed(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// tieHash is the hash that orders machines at equal distance for one
// asker. It continues from the asker's seed over the machine id, eight
// bytes at a time (ids are usually 14 bytes, and this runs for every
// machine of every answer), and ends with MurmurHash3's fmix64 finaliser:
// a multiply only carries bits upwards, and without a full mix ids that
// differ near their end would keep the same relative order for most
// askers, and the load would not spread.
func tieHash(seed uint64, id string) uint64 {
	h := (seed ^ uint64(len(id))) * fnvPrime64
	for ; len(id) >= 8; id = id[8:] {
		w := uint64(id[0]) | uint64(id[1])<<8 | uint64(id[2])<<16 | uint64(id[3])<<24 |
			uint64(id[4])<<32 | uint64(id[5])<<40 | uint64(id[6])<<48 | uint64(id[7])<<56
		h = (h ^ w) * fnvPrime64
	}
	if len(id) > 0 {
		var w uint64
		for i := 0; i < len(id); i++ {
			w |= uint64(id[i]) << (8 * i)
		}
		h = (h ^ w) * fnvPrime64
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
