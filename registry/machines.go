package registry

import (
	"iter"
	"slices"
	"strings"
)

// Chunk sizes of a MachineList. An edit copies the chunk it touches (at
// most maxChunk pointers) and the chunk index (one entry per chunk), so a
// change of one machine in an app of n machines costs about
// maxChunk + n/maxChunk words instead of n.
const (
	maxChunk = 64
	// minChunk: a chunk that shrinks below this is merged with a neighbour
	// when the two fit in one chunk, so chunks stay reasonably full.
	minChunk = maxChunk / 4
)

// MachineList is an immutable list of machines sorted by id (App.Machines).
// It is stored as chunks of at most 64 machines, so the next version of an
// app shares every chunk but the ones a change touched with the previous
// version: applying one machine event costs in proportion to a chunk, not
// to the app. The zero value is an empty list. A MachineList is never
// modified once built; readers may hold it for as long as they like.
type MachineList struct {
	chunks []machineChunk
}

// machineChunk is one non-empty run of the list, and the number of machines
// in it and every chunk before it (for At).
type machineChunk struct {
	ms  []*Machine
	end int
}

// NewMachineList returns the list of ms, sorted by id. ms is not kept nor
// modified. Ids must be distinct; when one repeats, the last machine with
// that id in ms is kept.
func NewMachineList(ms ...*Machine) MachineList {
	sorted := slices.Clone(ms)
	slices.SortStableFunc(sorted, compareMachines)
	// Keep the last of each run of equal ids.
	out := sorted[:0]
	for i, m := range sorted {
		if i+1 < len(sorted) && sorted[i+1].ID == m.ID {
			continue
		}
		out = append(out, m)
	}
	return machineListOfSorted(out)
}

func compareMachines(x, y *Machine) int { return strings.Compare(x.ID, y.ID) }

// machineListOfSorted makes a list of ms, which must be sorted by id with
// distinct ids. The list takes ms over: the caller must not touch it again.
// Chunks are as full as they can be while of equal sizes.
func machineListOfSorted(ms []*Machine) MachineList {
	if len(ms) == 0 {
		return MachineList{}
	}
	n := (len(ms) + maxChunk - 1) / maxChunk
	chunks := make([]machineChunk, n)
	start := 0
	for k := range chunks {
		end := len(ms) * (k + 1) / n
		// Capacity is capped: no chunk may grow into its neighbour.
		chunks[k] = machineChunk{ms: ms[start:end:end], end: end}
		start = end
	}
	return MachineList{chunks: chunks}
}

// Len is the number of machines in the list.
func (l MachineList) Len() int {
	if len(l.chunks) == 0 {
		return 0
	}
	return l.chunks[len(l.chunks)-1].end
}

// At returns the i-th machine in id order; it panics when i is out of
// range, like a slice index.
func (l MachineList) At(i int) *Machine {
	if i < 0 || i >= l.Len() {
		panic("registry: MachineList index out of range")
	}
	k, _ := slices.BinarySearchFunc(l.chunks, i, func(c machineChunk, i int) int {
		if c.end <= i {
			return -1
		}
		return 1
	})
	c := l.chunks[k]
	return c.ms[i-(c.end-len(c.ms))]
}

// All yields every machine with its index, in id order. It allocates
// nothing, and a range over it compiles to a plain loop over the chunks
// where the call is inlined (everywhere but directly in a b.Loop body:
// BenchmarkMachineListRange measures it level with a slice).
func (l MachineList) All() iter.Seq2[int, *Machine] {
	return func(yield func(int, *Machine) bool) {
		i := 0
		for _, c := range l.chunks {
			for _, m := range c.ms {
				if !yield(i, m) {
					return
				}
				i++
			}
		}
	}
}

// Get returns the machine with that id: a binary search over the chunks,
// then within one.
func (l MachineList) Get(id string) (*Machine, bool) {
	k, ok := l.chunkOf(id)
	if !ok {
		return nil, false
	}
	ms := l.chunks[k].ms
	if i, ok := machineIndex(ms, id); ok {
		return ms[i], true
	}
	return nil, false
}

// Slice returns a fresh flat copy of the list, in id order.
func (l MachineList) Slice() []*Machine {
	out := make([]*Machine, 0, l.Len())
	for _, c := range l.chunks {
		out = append(out, c.ms...)
	}
	return out
}

// chunkOf is the first chunk whose last id is >= id: the one that holds id
// if any does; ok is false when id is after every machine.
func (l MachineList) chunkOf(id string) (int, bool) {
	k, _ := slices.BinarySearchFunc(l.chunks, id, func(c machineChunk, id string) int {
		return strings.Compare(c.ms[len(c.ms)-1].ID, id)
	})
	return k, k < len(l.chunks)
}

// machineIndex finds id in machines sorted by id: its index, or where it
// would be inserted.
func machineIndex(machines []*Machine, id string) (int, bool) {
	return slices.BinarySearchFunc(machines, id, func(m *Machine, id string) int { return strings.Compare(m.ID, id) })
}

// machineCursor walks a MachineList or a plain sorted slice in id order
// without allocating (diffMachines).
type machineCursor struct {
	cur  []*Machine
	rest []machineChunk
}

func cursorOf(l MachineList) machineCursor {
	c := machineCursor{rest: l.chunks}
	c.fill()
	return c
}

func cursorOfSlice(ms []*Machine) machineCursor { return machineCursor{cur: ms} }

func (c *machineCursor) fill() {
	for len(c.cur) == 0 && len(c.rest) > 0 {
		c.cur, c.rest = c.rest[0].ms, c.rest[1:]
	}
}

func (c *machineCursor) done() bool { return len(c.cur) == 0 }

// peek is the current machine; only when !done().
func (c *machineCursor) peek() *Machine { return c.cur[0] }

func (c *machineCursor) next() {
	c.cur = c.cur[1:]
	c.fill()
}

// machineListEditor makes the next version of a MachineList from the one
// it starts with, which it never modifies: the first edit copies the chunk
// index, and each chunk is copied the first time an edit touches it.
// Every other chunk is shared with the old list.
type machineListEditor struct {
	// chunks is old's chunk index until the first edit, then a copy of
	// it. While editing, a chunk's end says whether this editor made it
	// (ownedChunk), so may write it in place; Done sets the real ends.
	chunks  []machineChunk
	started bool
}

// ownedChunk marks, in end, a chunk the editor made.
const ownedChunk = -1

func editMachines(l MachineList) machineListEditor {
	return machineListEditor{chunks: l.chunks}
}

func (e *machineListEditor) start() {
	if !e.started {
		e.chunks, e.started = slices.Clone(e.chunks), true
	}
}

// own makes chunk k writable, with room for extra more machines.
func (e *machineListEditor) own(k, extra int) {
	if e.chunks[k].end == ownedChunk && cap(e.chunks[k].ms)-len(e.chunks[k].ms) >= extra {
		return
	}
	ms := e.chunks[k].ms
	c := make([]*Machine, len(ms), len(ms)+extra)
	copy(c, ms)
	e.chunks[k] = machineChunk{ms: c, end: ownedChunk}
}

// Set puts m in the list, replacing the machine with its id if there is one.
func (e *machineListEditor) Set(m *Machine) {
	l := MachineList{chunks: e.chunks}
	k, ok := l.chunkOf(m.ID)
	if !ok {
		k = len(e.chunks) - 1 // after every machine: append to the last chunk
	}
	if k >= 0 {
		if i, found := machineIndex(e.chunks[k].ms, m.ID); found {
			if e.chunks[k].ms[i] == m {
				return
			}
			e.start()
			e.own(k, 0)
			e.chunks[k].ms[i] = m
			return
		}
	}
	e.start()
	if k < 0 {
		e.chunks = append(e.chunks, machineChunk{ms: []*Machine{m}, end: ownedChunk})
		return
	}
	e.own(k, 1)
	i, _ := machineIndex(e.chunks[k].ms, m.ID)
	e.chunks[k].ms = slices.Insert(e.chunks[k].ms, i, m)
	if ms := e.chunks[k].ms; len(ms) > maxChunk {
		// Split in halves, each a fresh chunk of its own.
		h := len(ms) / 2
		lo := slices.Clone(ms[:h])
		hi := slices.Clone(ms[h:])
		e.chunks[k] = machineChunk{ms: lo, end: ownedChunk}
		e.chunks = slices.Insert(e.chunks, k+1, machineChunk{ms: hi, end: ownedChunk})
	}
}

// Delete removes the machine with that id, if the list holds it.
func (e *machineListEditor) Delete(id string) {
	l := MachineList{chunks: e.chunks}
	k, ok := l.chunkOf(id)
	if !ok {
		return
	}
	i, found := machineIndex(e.chunks[k].ms, id)
	if !found {
		return
	}
	e.start()
	if len(e.chunks[k].ms) == 1 {
		e.chunks = slices.Delete(e.chunks, k, k+1)
		return
	}
	e.own(k, 0)
	ms := e.chunks[k].ms
	e.chunks[k].ms = slices.Delete(ms, i, i+1)
	if len(e.chunks[k].ms) >= minChunk {
		return
	}
	// Merge with the smaller neighbour when the two fit in one chunk.
	j := -1
	if k > 0 {
		j = k - 1
	}
	if k+1 < len(e.chunks) && (j < 0 || len(e.chunks[k+1].ms) < len(e.chunks[j].ms)) {
		j = k + 1
	}
	if j < 0 || len(e.chunks[j].ms)+len(e.chunks[k].ms) > maxChunk {
		return
	}
	a := min(j, k)
	merged := slices.Concat(e.chunks[a].ms, e.chunks[a+1].ms)
	e.chunks[a] = machineChunk{ms: merged, end: ownedChunk}
	e.chunks = slices.Delete(e.chunks, a+1, a+2)
}

// Done returns the edited list. The editor must not be used after.
func (e *machineListEditor) Done() MachineList {
	if !e.started {
		return MachineList{chunks: e.chunks} // nothing changed
	}
	n := 0
	for k := range e.chunks {
		// A chunk this editor made may have spare capacity; cap it so
		// that no later editor appends into memory another list shares
		// (they copy before writing anyway; this is belt and braces).
		if e.chunks[k].end == ownedChunk {
			ms := e.chunks[k].ms
			e.chunks[k].ms = ms[:len(ms):len(ms)]
		}
		n += len(e.chunks[k].ms)
		e.chunks[k].end = n
	}
	if len(e.chunks) == 0 {
		return MachineList{}
	}
	return MachineList{chunks: e.chunks}
}
