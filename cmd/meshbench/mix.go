//go:build linux

package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/miekg/dns"
)

// The standard mix of issue 6, as seen by one org:
//
//	70% <app>.internal AAAA
//	10% <region>.<app>.internal AAAA, a region where the app has started machines
//	10% <id>.vm.<app>.internal AAAA, a started machine
//	 7% vms.<app>.internal TXT
//	 3% names that do not exist: an unknown app, an unknown machine id
//	    or a region without machines of the app (a third each)
//
// Apps are picked Zipf-popular by their rank in the org. Every
// non-existent name is distinct within the file, so a server meets each
// for the first time once per pass over the file.

type query struct {
	Name  string // fully qualified, lowercase
	Type  uint16
	Kind  string // app, region, vm, vms, nx
	App   *app
	Arg   string // the region or machine id, if the kind has one
	Exist bool
}

func (q query) String() string { return q.Name + " " + dns.TypeToString[q.Type] }

// mixShare is the cumulative share of each kind, in percent.
var mixShare = []struct {
	kind string
	upTo int
}{{"app", 70}, {"region", 80}, {"vm", 90}, {"vms", 97}, {"nx", 100}}

// makeMix draws n queries for org o.
func makeMix(o *org, n int, zipfS float64, seed uint64) []query {
	rng := rand.New(rand.NewPCG(seed, 0x6d6978))
	pick := func() *app { return o.Apps[0] }
	if len(o.Apps) > 1 {
		z := rand.NewZipf(rng, zipfS, 1, uint64(len(o.Apps)-1))
		pick = func() *app { return o.Apps[z.Uint64()] }
	}
	started := map[*app][]*machine{} // memo: Zipf picks the same apps often
	startedOf := func(a *app) []*machine {
		s, ok := started[a]
		if !ok {
			s = a.startedIn("")
			started[a] = s
		}
		return s
	}
	out := make([]query, 0, n)
	for len(out) < n {
		p := rng.IntN(100)
		kind := "nx"
		for _, s := range mixShare {
			if p < s.upTo {
				kind = s.kind
				break
			}
		}
		a := pick()
		switch kind {
		case "app":
			out = append(out, query{Name: a.Name + ".internal.", Type: dns.TypeAAAA, Kind: kind, App: a, Exist: true})
		case "region", "vm":
			s := startedOf(a)
			if len(s) == 0 {
				continue // draw again: the kind needs a started machine
			}
			m := s[rng.IntN(len(s))]
			if kind == "region" {
				out = append(out, query{Name: m.Region + "." + a.Name + ".internal.", Type: dns.TypeAAAA, Kind: kind, App: a, Arg: m.Region, Exist: true})
			} else {
				out = append(out, query{Name: m.ID + ".vm." + a.Name + ".internal.", Type: dns.TypeAAAA, Kind: kind, App: a, Arg: m.ID, Exist: true})
			}
		case "vms":
			out = append(out, query{Name: "vms." + a.Name + ".internal.", Type: dns.TypeTXT, Kind: kind, App: a, Exist: true})
		default:
			out = append(out, nxQuery(rng, a, len(out)))
		}
	}
	return out
}

// nxQuery makes the i-th name that does not exist.
func nxQuery(rng *rand.Rand, a *app, i int) query {
	q := query{Type: dns.TypeAAAA, Kind: "nx", App: a}
	switch i % 3 {
	case 0:
		q.Name = fmt.Sprintf("nx-%x.internal.", rng.Uint64())
	case 1:
		// Ids are 14 hex digits; 16 can never be one of them.
		q.Name = fmt.Sprintf("%016x.vm.%s.internal.", rng.Uint64(), a.Name)
	default:
		have := a.deployedRegions()
		for _, r := range popularRegions {
			if !slices.Contains(have, r) {
				q.Name = r + "." + a.Name + ".internal."
				return q
			}
		}
		q.Name = fmt.Sprintf("nx-%x.internal.", rng.Uint64())
	}
	return q
}

// writeMix writes queries in dnsperf's input format: "name TYPE" lines.
func writeMix(path string, qs []query) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, q := range qs {
		fmt.Fprintf(w, "%s %s\n", q.Name, dns.TypeToString[q.Type])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
