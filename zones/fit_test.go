package zones

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestReplySizeKeepsTheNearestPrefix checks the ReplySize bound: for apps
// of many sizes over many regions, a bounded AAAA answer is exactly the
// first records of the unbounded one, and holds more records than could
// ever fit in that size whenever the app has more, so the server still cuts
// (and sets TC) just as it would on the whole list.
func TestReplySizeKeepsTheNearestPrefix(t *testing.T) {
	regions := []string{"ams", "iad", "syd", "nrt", "gru", "fra", "zzz"}
	rng := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{1, 17, 18, 19, 44, 45, 63, 64, 65, 200, 2500} {
		var b strings.Builder
		b.WriteString("orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n")
		b.WriteString("machines/acme/asker/0001 {\"region\":\"syd\",\"ip\":\"fdaa:0:18:1::2\",\"state\":\"started\"}\n")
		for i := range n {
			state := "started"
			if rng.IntN(10) == 0 {
				state = "stopped"
			}
			fmt.Fprintf(&b, "machines/acme/big/%06x {\"region\":%q,\"ip\":\"fdaa:0:18:b::%x\",\"state\":%q}\n",
				i+1, regions[rng.IntN(len(regions))], i+1, state)
		}
		snap := mustSnap(t, b.String())
		a := askerAt(t, snap, "fdaa:0:18:1::2")
		for _, name := range []string{"big.internal.", "syd.big.internal.", "global.big.internal.", "top50.nearest.of.big.internal."} {
			all := Answer(snap, a, question(name, dns.TypeAAAA), Config{})
			for _, size := range []int{512, 1232, 4096, 65535} {
				cfg := Config{ReplySize: size}
				got := Answer(snap, a, question(name, dns.TypeAAAA), cfg)
				if got.Rcode != all.Rcode || len(got.Ns) != len(all.Ns) {
					t.Fatalf("%s n=%d size=%d: rcode %d ns %d, unbounded %d ns %d", name, n, size, got.Rcode, len(got.Ns), all.Rcode, len(all.Ns))
				}
				want := addrs(all.Answer)
				if k := cfg.fitBound(); len(want) > k {
					want = want[:k]
					if k*minAAAASize <= size-12 {
						t.Fatalf("bound %d for size %d could all fit", k, size)
					}
				}
				if g := addrs(got.Answer); !slices.Equal(g, want) {
					t.Fatalf("%s n=%d size=%d: got %d records %v..., want %d %v...", name, n, size, len(g), head(g), len(want), head(want))
				}
			}
		}
	}
}

func head(s []string) []string { return s[:min(3, len(s))] }
