//go:build linux

package main

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// The hosts of `meshbench fleet` share one heap: N registries, 4 GiB for
// 1,000 hosts. After their start it holds almost no free memory that has
// been touched: each host's load ended with freeOSMemory, which hands every
// free page back to the system. A row's garbage then lands in fresh pages,
// and each first touch is a page fault: 0.7–0.9 per event applied, and
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

// readyRoom is the share of the room below the collector's goal that
// readyHeap may fill: under the pacer's lowest trigger point (about 0.7
// of the way from the live heap to the goal), so that readying the heap
// does not start a collection itself.
const readyRoom = 0.6

// readyHeap touches about want bytes of heap, never more than readyRoom of
// the room left below the collector's goal as the heap stands now (live
// objects and garbage), and drops them. The collection that follows frees
// them; the runtime keeps those pages rather than returning them, because
// the scavenger retains about 1.1 times the heap in use when that
// collection's marking ended, and the chunks were still in use then. Call
// it right after a collection (the goal is then as low as it gets), with
// no debug.FreeOSMemory running (readyHeapForRow). It returns the bytes
// touched.
func readyHeap(want int64) int64 {
	room := int64(runtimeMetric("/gc/heap/goal:bytes")) - int64(runtimeMetric("/memory/classes/heap/objects:bytes"))
	n := min(want, int64(float64(room)*readyRoom)) / heapChunk
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

// readyHeapForRow readies the shared heap for a row expected to apply
// events events and collects, as row() did before readying existed. It
// holds freeOSMem's lock throughout, so no FreeOSMemory queued by the
// hosts' loads hands the readied pages back meanwhile; one queued before
// runs first.
func readyHeapForRow(events int64) (readied int64) {
	for {
		freeOSMem.mu.Lock()
		if !freeOSMem.pending.Load() {
			break
		}
		freeOSMem.mu.Unlock() // let the queued one run first
		time.Sleep(10 * time.Millisecond)
	}
	defer freeOSMem.mu.Unlock()
	runtime.GC() // the goal as low as it gets: room measured from the live heap
	readied = readyHeap(events * heapPerEvent)
	runtime.GC()
	return readied
}

// gcCycles is how many collections the process has completed.
func gcCycles() uint64 { return runtimeMetric("/gc/cycles/total:gc-cycles") }

// heapAllocs is the bytes allocated on the heap since the process started.
func heapAllocs() uint64 { return runtimeMetric("/gc/heap/allocs:bytes") }

// runtimeMetric reads one runtime/metrics counter or gauge of kind uint64.
func runtimeMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// minorFaults is the process's minor page faults so far.
func minorFaults() int64 { return selfUsage().Minflt }
