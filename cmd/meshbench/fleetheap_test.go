package main

import (
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
)

func heapMetric(name string) int64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// minorFaults is the process's minor page faults so far.
func minorFaults(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt
}

var sink [][]*int

// readyHeap leaves the pages it touched in the heap after the collection
// that frees them, so the next allocations reuse them without faulting, and never
// asks for more than the room below the collector's goal.
func TestReadyHeap(t *testing.T) {
	live := make([]byte, 64<<20) // a live heap, so the goal leaves room
	for i := 0; i < len(live); i += 4096 {
		live[i] = 1
	}
	runtime.GC()
	room := heapMetric("/gc/heap/goal:bytes") - heapMetric("/gc/heap/live:bytes")
	n := readyHeap(32 << 20)
	if n <= 0 || n > 32<<20 || n > room*3/4 || n%heapChunk != 0 {
		t.Fatalf("readyHeap(32 MiB) touched %d bytes; room below the goal %d", n, room)
	}
	runtime.GC()
	if free := heapMetric("/memory/classes/heap/free:bytes"); free < n/2 {
		t.Errorf("after the collection the heap keeps %d free bytes not returned to the system; readyHeap touched %d", free, n)
	}
	// What a row does next: small objects with pointers, n/2 bytes of them.
	f0 := minorFaults(t)
	for range n / 2 / 1024 {
		sink = append(sink, make([]*int, 128))
	}
	if faults := minorFaults(t) - f0; faults > n/2/4096/4 {
		t.Errorf("readyHeap touched %d bytes, then allocating half as much faulted %d pages", n, faults)
	}
	sink = nil
	room = heapMetric("/gc/heap/goal:bytes") - heapMetric("/gc/heap/live:bytes")
	if all := readyHeap(1 << 40); all > room*3/4 {
		t.Errorf("readyHeap(1 TiB) touched %d bytes; room below the goal %d", all, room)
	}
	runtime.KeepAlive(live)
	if readyHeap(0) != 0 {
		t.Error("readyHeap(0) touched something")
	}
}
