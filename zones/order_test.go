package zones

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

func TestBuiltinTable(t *testing.T) {
	for i, s := range builtinSites {
		if !isRegionCode(s.code) || reservedRegion(s.code) {
			t.Errorf("%q is not a usable region code", s.code)
		}
		if i > 0 && builtinSites[i-1].code >= s.code {
			t.Errorf("builtinSites not sorted or not unique at %q", s.code)
		}
		if s.lat < -90 || s.lat > 90 || s.lon < -180 || s.lon > 180 {
			t.Errorf("%s: coordinates out of range", s.code)
		}
		if builtinIndex(s.code) != i {
			t.Errorf("builtinIndex(%q) = %d, want %d", s.code, builtinIndex(s.code), i)
		}
	}
	for _, c := range []string{"zzz", "AMS", "am", "amsx", "", "a-s"} {
		if builtinIndex(c) != -1 {
			t.Errorf("builtinIndex(%q) = %d, want -1", c, builtinIndex(c))
		}
	}
	for i := range builtinKm {
		for j := range builtinKm {
			if builtinKm[i][j] != builtinKm[j][i] {
				t.Errorf("distance %s-%s not symmetric", builtinSites[i].code, builtinSites[j].code)
			}
		}
		if builtinKm[i][i] != 0 {
			t.Errorf("distance %s-%s is not 0", builtinSites[i].code, builtinSites[i].code)
		}
	}
}

// TestDistances checks the haversine against well-known great-circle
// distances between the airports (to within 1%).
func TestDistances(t *testing.T) {
	r := NewRegions(nil)
	for _, tc := range []struct {
		a, b string
		km   float32
	}{
		{"ams", "lhr", 371},
		{"lhr", "ewr", 5574},
		{"sjc", "lax", 494},
		{"syd", "sin", 6288},
		{"nrt", "lax", 8753},
		{"gru", "jnb", 7438},
	} {
		got, ok := r.DistanceKm(tc.a, tc.b)
		if !ok || math.Abs(float64(got-tc.km)) > float64(tc.km)/100 {
			t.Errorf("%s-%s: %v km (%v), want about %v", tc.a, tc.b, got, ok, tc.km)
		}
	}
	if _, ok := r.DistanceKm("ams", "zzz"); ok {
		t.Error("a distance to an unknown region")
	}
}

func TestRegionsOverride(t *testing.T) {
	reg := map[string]*registry.Region{
		"iad": {Code: "iad", Lat: 52.3086, Lon: 4.7639}, // moved onto ams
		"xyz": {Code: "xyz", Lat: 50.90, Lon: 4.48},
	}
	r := NewRegions(reg)
	if lat, lon, ok := r.Coord("iad"); !ok || lat != 52.3086 || lon != 4.7639 {
		t.Errorf("iad: %v %v %v", lat, lon, ok)
	}
	if d, ok := r.DistanceKm("iad", "ams"); !ok || d != 0 {
		t.Errorf("iad-ams after the override: %v %v", d, ok)
	}
	if d, ok := r.DistanceKm("xyz", "ams"); !ok || d < 150 || d > 170 {
		t.Errorf("xyz-ams: %v %v", d, ok)
	}
	// Codes the registry leaves alone keep the table's distance exactly.
	d1, _ := r.DistanceKm("lhr", "fra")
	d2, _ := NewRegions(nil).DistanceKm("lhr", "fra")
	if d1 != d2 {
		t.Errorf("lhr-fra: %v with overrides elsewhere, %v without", d1, d2)
	}
}

// TestOriginPaths checks that the table fast path, the memo path and the
// direct computation agree to the bit, so an answer's order does not
// depend on whether the registry happens to hold unrelated regions.
func TestOriginPaths(t *testing.T) {
	unrelated := map[string]*registry.Region{"xyz": {Code: "xyz", Lat: 1, Lon: 2}}
	for _, from := range BuiltinCodes() {
		fast := newOrigin(NewRegions(nil), from)
		slow := newOrigin(NewRegions(unrelated), from)
		if fast.fast < 0 || slow.fast >= 0 {
			t.Fatalf("%s: fast path %d/%d", from, fast.fast, slow.fast)
		}
		for _, to := range append(BuiltinCodes(), "qqq") {
			a, b := fast.km(to), slow.km(to)
			b2 := slow.km(to) // memoised
			if a != b || b != b2 {
				t.Errorf("%s-%s: %v %v %v", from, to, a, b, b2)
			}
		}
		if fast.km("qqq") != unknownKm {
			t.Errorf("%s-qqq: %v, want unknown", from, fast.km("qqq"))
		}
	}
}

// orderRegistry: four machines in ams, two in fra, one in syd, one in an
// unknown region, and askers around them.
const orderRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
machines/acme/web/a001 {"region":"ams","ip":"fdaa:0:18:1::1","state":"started"}
machines/acme/web/a002 {"region":"ams","ip":"fdaa:0:18:1::2","state":"started"}
machines/acme/web/a003 {"region":"ams","ip":"fdaa:0:18:1::3","state":"started"}
machines/acme/web/a004 {"region":"ams","ip":"fdaa:0:18:1::4","state":"started"}
machines/acme/web/f001 {"region":"fra","ip":"fdaa:0:18:2::1","state":"started"}
machines/acme/web/f002 {"region":"fra","ip":"fdaa:0:18:2::2","state":"started"}
machines/acme/web/5001 {"region":"syd","ip":"fdaa:0:18:3::1","state":"started"}
machines/acme/web/2001 {"region":"zzz","ip":"fdaa:0:18:4::1","state":"started"}
peers/acme/p-ams {"ip":"fdaa:0:18:9::1","region":"ams"}
peers/acme/p-zzz {"ip":"fdaa:0:18:9::2","region":"zzz"}
`

func regionOf(addr string) string {
	switch {
	case strings.HasPrefix(addr, "fdaa:0:18:1::"):
		return "ams"
	case strings.HasPrefix(addr, "fdaa:0:18:2::"):
		return "fra"
	case strings.HasPrefix(addr, "fdaa:0:18:3::"):
		return "syd"
	}
	return "zzz"
}

func TestOrderByDistance(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	a := askerAt(t, snap, "fdaa:0:18:9::1")
	got := addrs(Answer(snap, a, question("web.internal.", dns.TypeAAAA), Config{}).Answer)
	var regions []string
	for _, g := range got {
		regions = append(regions, regionOf(g))
	}
	if want := "ams ams ams ams fra fra syd zzz"; strings.Join(regions, " ") != want {
		t.Errorf("regions in order %v, want %s", regions, want)
	}
}

func TestOrderStableForOneAsker(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	a := askerAt(t, snap, "fdaa:0:18:9::1")
	first := addrs(Answer(snap, a, question("web.internal.", dns.TypeAAAA), Config{}).Answer)
	for i := 0; i < 20; i++ {
		again := addrs(Answer(snap, a, question("WEB.internal.", dns.TypeAAAA), Config{}).Answer)
		if !slices.Equal(first, again) {
			t.Fatalf("order changed: %v then %v", first, again)
		}
	}
	// top<N> is a prefix of the full order.
	for n := 1; n <= 9; n++ {
		top := addrs(Answer(snap, a, question(fmt.Sprintf("top%d.nearest.of.web.internal.", n), dns.TypeAAAA), Config{}).Answer)
		if want := first[:min(n, len(first))]; !slices.Equal(top, want) {
			t.Errorf("top%d = %v, want %v", n, top, want)
		}
	}
}

// TestOrderSpreads checks that ties spread over askers: across many
// source addresses in ams, each of the four ams machines comes first
// about a quarter of the time, and askers one address apart differ.
func TestOrderSpreads(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	org := snap.Org("acme")
	first := map[string]int{}
	const askers = 4000
	for i := 0; i < askers; i++ {
		addr := netip.AddrFrom16([16]byte{0xfd, 0xaa, 0, 0, 0, 0x18, 0, 0xc, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
		a := Asker{Org: org, Addr: addr}
		got := addrs(Answer(snap, a, question("web.internal.", dns.TypeAAAA), Config{ServerRegion: "ams"}).Answer)
		first[got[0]]++
	}
	if len(first) != 4 {
		t.Fatalf("first answers: %v", first)
	}
	for ip, n := range first {
		if regionOf(ip) != "ams" || n < askers/4*8/10 || n > askers/4*12/10 {
			t.Errorf("%s first for %d of %d askers", ip, n, askers)
		}
	}
}

func TestOrderUnknownAskerRegion(t *testing.T) {
	snap := mustSnap(t, orderRegistry)
	a := askerAt(t, snap, "fdaa:0:18:9::2") // a peer in zzz
	o := newOrigin(NewRegions(snap.Regions()), a.Region(Config{}))
	for _, code := range []string{"ams", "syd", "zzz", "qqq"} {
		if d := o.km(code); d != 0 {
			t.Errorf("from an unknown region, %s is %v km away; want 0 (all equal)", code, d)
		}
	}
	// Pure hash order: sorted by tieHash alone.
	got := addrs(Answer(snap, a, question("web.internal.", dns.TypeAAAA), Config{}).Answer)
	app := snap.Org("acme").App("web")
	seed := addrSeed(a.Addr)
	ms := app.Machines.Slice()
	slices.SortFunc(ms, func(x, y *registry.Machine) int {
		hx, hy := tieHash(seed, x.ID), tieHash(seed, y.ID)
		if hx < hy {
			return -1
		}
		if hx > hy {
			return 1
		}
		return 0
	})
	var want []string
	for _, m := range ms {
		want = append(want, m.IP.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want hash order %v", got, want)
	}
}

func rk(km float32, hash uint64, m *registry.Machine) ranked {
	return ranked{key: rankKey(km, hash), hash: hash, m: m}
}

func TestCompareRanked(t *testing.T) {
	m1, m2 := &registry.Machine{ID: "1"}, &registry.Machine{ID: "2"}
	for _, tc := range []struct {
		x, y ranked
		want int
	}{
		{rk(1, 9<<40, m1), rk(2, 0, m1), -1},
		{rk(1.5, 9<<40, m1), rk(1.75, 0, m1), -1},
		{rk(0, 1<<63, m1), rk(1e-30, 0, m1), -1},
		{rk(2, 0, m1), rk(2, 1, m1), -1},         // low hash bits only
		{rk(2, 1<<40, m1), rk(2, 1<<41, m1), -1}, // high hash bits
		{rk(2, 1, m1), rk(2, 1, m2), -1},
		{rk(unknownKm, 0, m1), rk(20000, 9, m1), 1},
		{rk(unknownKm, 5, m1), rk(unknownKm, 4, m1), 1},
	} {
		if got := compareRanked(tc.x, tc.y); got != tc.want {
			t.Errorf("compareRanked(%+v, %+v) = %d, want %d", tc.x, tc.y, got, tc.want)
		}
		if got := compareRanked(tc.y, tc.x); got != -tc.want {
			t.Errorf("compareRanked not antisymmetric for %+v, %+v", tc.x, tc.y)
		}
	}
}

// TestKeepBest checks the top<N> selection against a full sort, for every
// N and many askers (different tie orders), with machines offered in id
// order and in reverse.
func TestKeepBest(t *testing.T) {
	snap := benchSnapshot(t, 200)
	app := snap.Org("acme").App("web")
	for i := 0; i < 20; i++ {
		seed := addrSeed(netip.AddrFrom16([16]byte{0xfd, 0xaa, 15: byte(i)}))
		o := newOrigin(NewRegions(nil), BuiltinCodes()[i%numBuiltin])
		var full []ranked
		for _, m := range app.Machines.All() {
			full = append(full, rankOf(m, &o, seed))
		}
		sortRanked(full)
		for n := 1; n <= MaxTop; n++ {
			for _, reverse := range []bool{false, true} {
				ms := app.Machines.Slice()
				if reverse {
					slices.Reverse(ms)
				}
				best := make([]ranked, 0, n)
				for _, m := range ms {
					best = keepBest(best, rankOf(m, &o, seed), n)
				}
				if len(best) != n {
					t.Fatalf("top%d: %d entries", n, len(best))
				}
				for j := range best {
					if best[j].m != full[j].m {
						t.Fatalf("asker %d top%d reverse=%v: entry %d is %s, want %s", i, n, reverse, j, best[j].m.ID, full[j].m.ID)
					}
				}
			}
		}
	}
}
