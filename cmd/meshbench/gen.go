//go:build linux

package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// popularRegions are the usual region codes, most used first: apps pick
// their regions with a Zipf weight over this order, so ams and iad carry
// more machines than eze, as on a real fleet. All are in meshdns's built-in
// region table, so answers are ordered by real distances.
var popularRegions = []string{
	"ams", "iad", "ord", "fra", "lhr", "sjc", "syd", "sin", "nrt", "gru",
	"cdg", "ewr", "lax", "sea", "dfw", "yyz", "hkg", "bom", "mad", "waw",
	"arn", "atl", "bog", "bos", "den", "eze", "gdl", "gig", "jnb", "mia",
	"otp", "phx", "qro", "scl", "yul",
}

// genConfig says what registry to generate.
type genConfig struct {
	Orgs, Apps, Machines int
	// ZipfS > 1 spreads machines over apps Zipf-distributed (a few apps
	// hold most machines); 0 spreads them evenly (the scale benchmark's
	// exact orgs × apps × machines shape).
	ZipfS float64
	// Stopped is the fraction of machines in state stopped.
	Stopped float64
	Seed    uint64
}

func (c genConfig) validate() error {
	switch {
	case c.Orgs < 1 || c.Orgs > 0xfffe:
		return fmt.Errorf("--orgs %d: want 1..65534 (one fdaa:0:<n>::/48 each)", c.Orgs)
	case c.Apps < c.Orgs:
		return fmt.Errorf("--apps %d: want at least one app per org (%d orgs)", c.Apps, c.Orgs)
	case c.Machines < c.Apps:
		return fmt.Errorf("--machines %d: want at least one machine per app (%d apps)", c.Machines, c.Apps)
	case c.ZipfS != 0 && c.ZipfS <= 1:
		return fmt.Errorf("--zipf %g: want 0 (even) or > 1", c.ZipfS)
	case c.Stopped < 0 || c.Stopped >= 1:
		return fmt.Errorf("--stopped %g: want a fraction in [0,1)", c.Stopped)
	}
	return nil
}

// reg is a generated registry: the single source from which the etcd
// items, the NSD zone, the query mix and the expected answers are derived.
type reg struct {
	Orgs []*org
}

type org struct {
	Name string
	Net  netip.Prefix
	Apps []*app // by popularity, most popular first
}

type app struct {
	Org      *org
	Name     string
	Regions  []string // regions the app deploys to, most popular first
	Machines []*machine
}

type machine struct {
	App     *app
	ID      string
	Region  string
	IP      netip.Addr
	Started bool
}

// generate builds a registry deterministically from c.Seed.
func generate(c genConfig) (*reg, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x6d657368))
	r := &reg{}
	for i := range c.Orgs {
		n := i + 1 // fdaa:0:0::/48 would hold fdaa::3, the host-wide DNS address
		r.Orgs = append(r.Orgs, &org{
			Name: fmt.Sprintf("org%d", n),
			Net:  netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0xaa, 0, 0, byte(n >> 8), byte(n)}), 48),
		})
	}
	// App i belongs to org i mod orgs, so with Zipf every org gets a share
	// of popular and unpopular apps; app ranks are global.
	apps := make([]*app, c.Apps)
	for i := range apps {
		o := r.Orgs[i%c.Orgs]
		apps[i] = &app{Org: o, Name: fmt.Sprintf("app-%d", i)}
		o.Apps = append(o.Apps, apps[i])
	}
	counts := machineCounts(rng, c)
	regionZipf := rand.NewZipf(rng, 1.3, 1, uint64(len(popularRegions)-1))
	next := 0 // global machine index: the source of unique ids and addresses
	perOrg := make(map[*org]uint32)
	for i, a := range apps {
		a.Regions = pickRegions(regionZipf, counts[i])
		for j := range counts[i] {
			host := perOrg[a.Org]
			perOrg[a.Org]++
			a.Machines = append(a.Machines, &machine{
				App:     a,
				ID:      machineID(uint64(next)),
				Region:  a.Regions[j%len(a.Regions)],
				IP:      hostAddr(a.Org.Net, host),
				Started: rng.Float64() >= c.Stopped,
			})
			next++
		}
	}
	return r, nil
}

// machineCounts gives every app one machine, then hands out the rest
// evenly or by Zipf rank.
func machineCounts(rng *rand.Rand, c genConfig) []int {
	counts := make([]int, c.Apps)
	for i := range counts {
		counts[i] = 1
	}
	rest := c.Machines - c.Apps
	if c.ZipfS == 0 || c.Apps == 1 {
		for i := range rest {
			counts[i%c.Apps]++
		}
		return counts
	}
	z := rand.NewZipf(rng, c.ZipfS, 1, uint64(c.Apps-1))
	for range rest {
		counts[z.Uint64()]++
	}
	return counts
}

// pickRegions chooses how many regions an app with n machines spans (big
// apps span more, as real ones do) and which, favouring popular regions.
func pickRegions(z *rand.Zipf, n int) []string {
	want := 1
	for m := n; m > 1 && want < len(popularRegions); m /= 3 {
		want++
	}
	want = min(want, n)
	var out []string
	for len(out) < want {
		r := popularRegions[z.Uint64()]
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// machineID turns a machine's index into a 14-hex-digit id like Fly's.
// Multiplying by an odd constant is a bijection modulo 2^56, so ids are
// unique without a set to check against, yet look random.
func machineID(i uint64) string {
	x := ((i + 1) * 0x9e3779b97f4a7c15) & (1<<56 - 1)
	var b [7]byte
	for k := 6; k >= 0; k-- {
		b[k] = byte(x)
		x >>= 8
	}
	return hex.EncodeToString(b[:])
}

// hostAddr is the n-th machine address of an org: <net>:<n as 32 bits>::2.
func hostAddr(net netip.Prefix, n uint32) netip.Addr {
	a := net.Addr().As16()
	a[6], a[7], a[8], a[9] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	a[15] = 2
	return netip.AddrFrom16(a)
}

// startedIn returns the started machines of a in region ("" for all).
func (a *app) startedIn(region string) []*machine {
	var out []*machine
	for _, m := range a.Machines {
		if m.Started && (region == "" || m.Region == region) {
			out = append(out, m)
		}
	}
	return out
}

// deployedRegions are the regions where a has any machine, sorted.
func (a *app) deployedRegions() []string {
	var out []string
	for _, m := range a.Machines {
		if !slices.Contains(out, m.Region) {
			out = append(out, m.Region)
		}
	}
	slices.Sort(out)
	return out
}

// machineCount is the number of machines in r.
func (r *reg) machineCount() int {
	n := 0
	for _, o := range r.Orgs {
		for _, a := range o.Apps {
			n += len(a.Machines)
		}
	}
	return n
}
