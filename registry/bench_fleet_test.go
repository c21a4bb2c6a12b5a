package registry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// fleetRegistry is meshbench fleet's registry shape: machines machines in
// apps apps Zipf-sized (exponent 1.1, the biggest app ~18% of all), app i
// in org i mod orgs, addresses <org net>:<n as 32 bits>::2. It returns the
// load events and, per machine, its key and address.
func fleetRegistry(orgs, apps, machines int) (evs []Event, keys []string, ips []netip.Addr) {
	w := make([]float64, apps)
	sum := 0.0
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), 1.1)
		sum += w[i]
	}
	rev := int64(0)
	add := func(key, value string) {
		rev++
		evs = append(evs, Event{Key: DefaultPrefix + key, Value: []byte(value), CreateRevision: rev, ModRevision: rev, Version: 1})
	}
	nets := make([][16]byte, orgs)
	for o := range orgs {
		nets[o] = [16]byte{0xfd, 0xaa, 0, 0, byte(o >> 8), byte(o)}
		add(fmt.Sprintf("orgs/org%d", o), fmt.Sprintf(`{"network":"%s/48"}`, netip.AddrFrom16(nets[o])))
	}
	hosts := make([]uint32, orgs)
	for a := range apps {
		n := max(1, int(float64(machines)*w[a]/sum))
		o := a % orgs
		for range n {
			hosts[o]++
			b := nets[o]
			h := hosts[o]
			b[6], b[7], b[8], b[9], b[15] = byte(h>>24), byte(h>>16), byte(h>>8), byte(h), 2
			ip := netip.AddrFrom16(b)
			key := fmt.Sprintf("machines/org%d/app%d/%08x", o, a, uint32(len(keys))*2654435761)
			add(key, fmt.Sprintf(`{"region":"%s","ip":"%s","state":"started"}`, []string{"ams", "iad", "syd", "nrt"}[len(keys)%4], ip))
			keys, ips = append(keys, key), append(ips, ip)
		}
	}
	return evs, keys, ips
}

// BenchmarkApplyFleet applies one machine event (stop, start or move to
// another region, in turn, on a random machine) to each of many stores in turn, as the hosts
// of meshbench fleet do in one process: every store is cold in the CPU's
// caches when its event comes. What one event costs there, not in
// BenchmarkApplyOneMachine's warm store, decides how many hosts one
// process can keep current.
func BenchmarkApplyFleet(b *testing.B) {
	for _, stores := range []int{1, 200} {
		b.Run(fmt.Sprintf("stores=%d", stores), func(b *testing.B) {
			evs, keys, ips := fleetRegistry(100, 1000, 10000)
			ss := make([]*Store, stores)
			rev := int64(len(evs))
			for i := range ss {
				ss[i] = NewStore(DefaultPrefix)
				ss[i].Replace(rev, evs)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			regions := []string{"ams", "iad", "syd", "nrt", "fra"}
			// Each store's idea of each machine's region, as loaded.
			region := make([][]uint8, stores)
			for i := range region {
				region[i] = make([]uint8, len(keys))
				for m := range keys {
					region[i][m] = uint8(m % 4)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%stores == 0 {
					rev++
				}
				m := rng.IntN(len(keys))
				// Stop, start and move in turn, as meshbench fleet writes.
				state, r := "stopped", &region[i%stores][m]
				switch i / stores % 3 {
				case 1:
					state = "started"
				case 2:
					state = "started"
					*r = (*r + 1) % uint8(len(regions))
				}
				val := fmt.Appendf(nil, `{"region":"%s","ip":"%s","state":"%s"}`, regions[*r], ips[m], state)
				ss[i%stores].Apply(rev, []Event{{Key: DefaultPrefix + keys[m], Value: val, CreateRevision: 1, ModRevision: rev, Version: 2}})
				i++
			}
			b.StopTimer()
			for _, s := range ss {
				if s.InvalidCount() != 0 {
					b.Fatalf("%d invalid: %v", s.InvalidCount(), s.Invalid())
				}
			}
		})
	}
}
