//go:build linux

package main

import (
	"runtime"
	"testing"
)

var sink [][]*int

// readyHeapForRow leaves the pages it touched in the heap after the
// collection that frees them, so the next allocations reuse them without
// faulting; readyHeap never fills the room below the collector's goal so
// far that it starts a collection itself.
func TestReadyHeap(t *testing.T) {
	live := make([]byte, 64<<20) // a live heap, so the goal leaves room
	for i := 0; i < len(live); i += 4096 {
		live[i] = 1
	}
	n := readyHeapForRow((32 << 20) / heapPerEvent)
	if n <= 0 || n > 32<<20 || n%heapChunk != 0 {
		t.Fatalf("readied %d bytes for 32 MiB", n)
	}
	if free := int64(runtimeMetric("/memory/classes/heap/free:bytes")); free < n/2 {
		t.Errorf("after the collection the heap keeps %d free bytes not returned to the system; readyHeap touched %d", free, n)
	}
	// What a row does next: small objects with pointers, n/2 bytes of them.
	f0 := minorFaults()
	for range n / 2 / 1024 {
		sink = append(sink, make([]*int, 128))
	}
	if faults := minorFaults() - f0; faults > n/2/4096/4 {
		t.Errorf("readyHeap touched %d bytes, then allocating half as much faulted %d pages", n, faults)
	}
	sink = nil

	runtime.GC()
	goal := int64(runtimeMetric("/gc/heap/goal:bytes"))
	objects := int64(runtimeMetric("/memory/classes/heap/objects:bytes"))
	gc0 := gcCycles()
	all := readyHeap(1 << 40)
	if gcCycles() != gc0 {
		t.Errorf("readyHeap(1 TiB) touched %d bytes and started a collection (heap objects %d, goal %d)", all, objects, goal)
	}
	if all <= 0 || all > goal-objects {
		t.Errorf("readyHeap(1 TiB) touched %d bytes; heap objects %d, goal %d", all, objects, goal)
	}
	runtime.KeepAlive(live)
	if readyHeap(0) != 0 {
		t.Error("readyHeap(0) touched something")
	}
}
