//go:build linux

package main

import (
	"fmt"
	"time"
)

// printPropagation prints the propagation table: DNS latency overall, by
// kind of change and by the size of the changed machine's app (a change
// rebuilds its app's part of the snapshot), and etcd's own share.
func printPropagation(e *env, c propConfig, changes []change) {
	type row = struct {
		Name    string
		Samples []time.Duration
	}
	var all, write, watch []time.Duration
	byKind := map[string][]time.Duration{}
	bySize := map[string][]time.Duration{}
	lost := 0
	for _, ch := range changes {
		write = append(write, ch.Write)
		watch = append(watch, ch.Watch)
		if ch.Lost {
			lost++
			continue
		}
		all = append(all, ch.DNS)
		byKind[ch.Kind] = append(byKind[ch.Kind], ch.DNS)
		bySize[sizeBucket(ch.AppSize)] = append(bySize[sizeBucket(ch.AppSize)], ch.DNS)
	}
	rows := []row{{"DNS shows change (all)", all}}
	for _, k := range []string{"start", "stop", "move"} {
		rows = append(rows, row{"  " + k, byKind[k]})
	}
	for _, b := range sizeBuckets {
		if len(bySize[b.name]) > 0 {
			rows = append(rows, row{"  app of " + b.name + " machines", bySize[b.name]})
		}
	}
	rows = append(rows,
		row{"etcd write call (before t0)", write},
		row{"etcd watch event at meshbench", watch})
	fmt.Fprintf(e.out, "\n## propagation: %d machines in %d apps; %d changes, timed from the etcd write's return\n\n",
		c.Gen.Machines, c.Gen.Apps, len(changes))
	printPercentiles(e.out, rows)
	fmt.Fprintf(e.out, "\nlost (not seen within %v): %d\n", c.Timeout, lost)
}

var sizeBuckets = []struct {
	name string
	max  int
}{{"1-10", 10}, {"11-100", 100}, {"101-1000", 1000}, {"1001+", 1 << 62}}

func sizeBucket(n int) string {
	for _, b := range sizeBuckets {
		if n <= b.max {
			return b.name
		}
	}
	return "?"
}
