package registry

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Reverse names (SPEC §5, zones' a.a.d.f.ip6.arpa.) ask two things of an
// org: what one of its addresses is — the owner map answers that for
// machines and peers, FlycastApp for apps' flycast addresses — and
// whether any of its addresses begins with a nibble prefix (an empty
// non-terminal on the way to one). The second needs the org's addresses
// sorted. That index is built on first use for each published *Org and
// kept with it, not in buildOrg: a registry event then costs what it did
// (in proportion to the change), and only an org whose reverse names are
// asked pays one sort per version, O(n log n) in its addresses.

// addrIndex is every address of one org version, sorted.
type addrIndex struct {
	sorted  []u128              // machines, peers, flycasts, <network>::3; unique
	flycast map[netip.Addr]*App // an app's flycast address → the app
}

// addrs returns the org's address index, building it on first use.
// Concurrent first uses may each build it; they build the same thing.
func (o *Org) addrs() *addrIndex {
	if o.addrIdx != nil {
		if x := o.addrIdx.Load(); x != nil {
			return x
		}
	}
	x := &addrIndex{sorted: make([]u128, 0, o.owners.Len()+o.apps.Len()+1)}
	o.owners.Range(func(a netip.Addr, _ Owner) bool {
		x.sorted = append(x.sorted, u128Of(a.As16()))
		return true
	})
	o.apps.Range(func(_ string, app *App) bool {
		if app.Flycast.IsValid() {
			if x.flycast == nil {
				x.flycast = map[netip.Addr]*App{}
			}
			x.flycast[app.Flycast] = app
			x.sorted = append(x.sorted, u128Of(app.Flycast.As16()))
		}
		return true
	})
	if o.Network.IsValid() {
		x.sorted = append(x.sorted, u128Of(o.APIAddr().As16()))
	}
	slices.SortFunc(x.sorted, compareU128)
	x.sorted = slices.Compact(x.sorted)
	if o.addrIdx != nil {
		o.addrIdx.Store(x)
	}
	return x
}

// u128 is an address as two big-endian halves: sorting compares two
// integers instead of 16 bytes.
type u128 struct{ hi, lo uint64 }

func u128Of(b [16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func compareU128(a, b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// FlycastApp returns the app whose flycast address is a, or nil.
func (o *Org) FlycastApp(a netip.Addr) *App { return o.addrs().flycast[a] }

// HasAddrUnder reports whether an address of the org — a deployed
// machine's, a peer's, an app's flycast address or <network>::3 — begins
// with the first nibbles nibbles (4-bit digits, most significant first) of
// prefix; the rest of prefix is ignored. nibbles is clamped to 0..32.
func (o *Org) HasAddrUnder(prefix [16]byte, nibbles int) bool {
	nibbles = min(max(nibbles, 0), 32)
	lo := maskNibbles(u128Of(prefix), nibbles)
	s := o.addrs().sorted
	// The first address at or after the prefix's lowest address holds the
	// prefix if any does.
	i, _ := slices.BinarySearchFunc(s, lo, compareU128)
	return i < len(s) && maskNibbles(s[i], nibbles) == lo
}

// maskNibbles keeps the first n (0..32) nibbles of a and zeroes the rest.
func maskNibbles(a u128, n int) u128 {
	switch {
	case n == 0:
		return u128{}
	case n < 16:
		return u128{hi: a.hi &^ (^uint64(0) >> (4 * n))}
	case n == 16:
		return u128{hi: a.hi}
	case n < 32:
		return u128{hi: a.hi, lo: a.lo &^ (^uint64(0) >> (4 * (n - 16)))}
	}
	return a
}
