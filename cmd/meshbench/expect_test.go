//go:build linux

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/zones"
)

// The expected vms.<app> text of a big app ends after the last whole entry
// within zones.MaxListText bytes, as meshdns answers it (seed 11's biggest
// app, 13,607 machines, was reported wrong before this rule was modelled).
func TestVMSTextIsCutAtAWholeEntry(t *testing.T) {
	for _, n := range []int{1, 100, 3367, 3368, 3369, 20000} {
		a := &app{Name: "big"}
		var all []string
		for i := range n {
			id := fmt.Sprintf("%014x", i)
			a.Machines = append(a.Machines, &machine{App: a, ID: id, Region: "ams", Started: true})
			all = append(all, id+" ams")
		}
		full := strings.Join(all, ",")
		got := vmsText(a)
		if len(full) <= zones.MaxListText {
			if got != full {
				t.Fatalf("n=%d: cut a list that fits", n)
			}
			continue
		}
		if len(got) > zones.MaxListText || !strings.HasPrefix(full, got) || full[len(got)] != ',' {
			t.Fatalf("n=%d: %d bytes, not a whole-entry prefix of %d", n, len(got), len(full))
		}
		if len(got)+1+len(all[0]) <= zones.MaxListText {
			t.Fatalf("n=%d: %d bytes, another entry would have fit", n, len(got))
		}
	}
}
