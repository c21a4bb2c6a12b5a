package main

import (
	"runtime"
	"runtime/metrics"
)

// The hosts of `meshbench fleet` share one heap: N registries, 4 GiB for
// 1,000 hosts. After their start it holds almost no free memory that has
// been touched: each host's load ended with freeOSMemory, which hands every
// free page back to the system. A row's garbage then lands in fresh pages,
// and each first touch is a page fault: about 0.7 per event applied, and
// in the 1,000-host row's profile 13% of the hosts' CPU (memclr under
// mcentral.grow alone; more in the first writes to new objects). A real
// host pays that once, in its first collection cycle after a load, on a
// heap of a few megabytes; after that its garbage reuses pages it has
// touched before. readyHeap puts the shared heap in that steady state
// before a row is measured, so the row times what a host does per event,
// not the growth of a heap no host has.

// heapPerEvent is how much of the heap to ready per event a row is
// expected to deliver: above the 3.4 KB BenchmarkApplyFleet allocates per
// event, to leave room for the gRPC buffers, the tracker and the pollers.
const heapPerEvent = 5 << 10

// heapChunk is what readyHeap allocates at a time: one 8 KiB page, so the
// chunks fill the heap's free gaps (which the runtime hands out lowest
// address first, as it will the row's spans) before the heap grows.
const heapChunk = 8 << 10

// readyHeap touches about want bytes of heap, never more than the room
// left below the collector's current goal, and drops them: the collection
// that follows (the row's runtime.GC) frees them, and since the heap stays
// under its goal the runtime keeps those pages rather than returning them.
// It returns the bytes touched.
func readyHeap(want int64) int64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	room := int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64())
	n := min(want, room*3/4) / heapChunk
	if n <= 0 {
		return 0
	}
	chunks := make([][]byte, n)
	for i := range chunks {
		b := make([]byte, heapChunk)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		chunks[i] = b
	}
	runtime.KeepAlive(chunks)
	return n * heapChunk
}

// heapAllocs is the bytes allocated on the heap since the process started.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
