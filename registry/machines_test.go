package registry

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// checkList compares l with want (sorted by id) through every accessor, and
// checks the chunk invariants.
func checkList(t *testing.T, what string, l MachineList, want []*Machine) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", what, l.Len(), len(want))
	}
	for i, m := range want {
		if got := l.At(i); got != m {
			t.Fatalf("%s: At(%d) = %s, want %s", what, i, got.ID, m.ID)
		}
		if got, ok := l.Get(m.ID); !ok || got != m {
			t.Fatalf("%s: Get(%s) = %v, %v", what, m.ID, got, ok)
		}
	}
	n := 0
	for i, m := range l.All() {
		if i != n || n >= len(want) || m != want[n] {
			t.Fatalf("%s: All yields %d %v at step %d", what, i, m, n)
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("%s: All yields %d machines, want %d", what, n, len(want))
	}
	if !slices.Equal(l.Slice(), want) {
		t.Fatalf("%s: Slice differs", what)
	}
	end := 0
	for k, c := range l.chunks {
		if len(c.ms) == 0 || len(c.ms) > maxChunk {
			t.Fatalf("%s: chunk %d holds %d machines", what, k, len(c.ms))
		}
		end += len(c.ms)
		if c.end != end {
			t.Fatalf("%s: chunk %d ends at %d, want %d", what, k, c.end, end)
		}
	}
	for i := 1; i < len(want); i++ {
		if want[i-1].ID >= want[i].ID {
			t.Fatalf("model not sorted")
		}
	}
}

// checkDiff compares diffMachines over lists and over a slice with a diff
// of the models by map.
func checkDiff(t *testing.T, was, now []*Machine, l, prev MachineList) {
	t.Helper()
	wantSet := map[string]bool{}
	byID := map[string]*Machine{}
	for _, m := range was {
		byID[m.ID] = m
	}
	for _, m := range now {
		if o := byID[m.ID]; o == nil || !sameMachine(o, m) {
			wantSet[m.ID] = true
		}
		delete(byID, m.ID)
	}
	for id := range byID {
		wantSet[id] = true
	}
	for _, c := range []struct {
		what       string
		want, have machineCursor
	}{{"lists", cursorOf(l), cursorOf(prev)}, {"slice", cursorOfSlice(now), cursorOf(prev)}} {
		got := map[string]bool{}
		diffMachines("o", "a", c.want, c.have, func(k Key) bool { got[k.Name] = true; return true })
		if len(got) != len(wantSet) {
			t.Fatalf("diffMachines over %s: %d differ, want %d", c.what, len(got), len(wantSet))
		}
		for id := range wantSet {
			if !got[id] {
				t.Fatalf("diffMachines over %s misses %s", c.what, id)
			}
		}
	}
}

func mach(id string, v int) *Machine {
	return &Machine{ID: id, Region: fmt.Sprint(v)}
}

// TestMachineListEdits edits lists of 0 to a few thousand machines at
// random — inserts, replaces, deletes, in batches like buildApp's — and
// compares each result with a plain sorted slice; every old list must read
// exactly as it did before the edits (readers hold old snapshots).
func TestMachineListEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	id := func(n int) string { return fmt.Sprintf("%06x", rng.IntN(n)) }
	for _, size := range []int{0, 1, 2, 63, 64, 65, 128, 200, 1000, 3000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			space := max(2*size, 8)
			var model []*Machine
			for len(model) < size {
				m := mach(id(space), 0)
				if i, found := machineIndex(model, m.ID); !found {
					model = slices.Insert(model, i, m)
				}
			}
			l := NewMachineList(model...)
			checkList(t, "built", l, model)
			type version struct {
				l    MachineList
				want []*Machine
			}
			var old []version
			for step := range 300 {
				old = append(old, version{l, slices.Clone(model)})
				e := editMachines(l)
				batch := 1 + rng.IntN(3)
				if step%50 == 0 {
					batch = 100 // many edits in one batch: splits and merges
				}
				for range batch {
					x := id(space)
					i, found := machineIndex(model, x)
					switch op := rng.IntN(10); {
					case op < 4 || len(model) == 0 && op < 8: // insert or replace
						m := mach(x, step)
						e.Set(m)
						if found {
							model[i] = m
						} else {
							model = slices.Insert(model, i, m)
						}
					case op < 8: // delete an existing one
						j := rng.IntN(len(model))
						e.Delete(model[j].ID)
						model = slices.Delete(model, j, j+1)
					default: // delete, maybe absent
						e.Delete(x)
						if found {
							model = slices.Delete(model, i, i+1)
						}
					}
				}
				prev := old[len(old)-1]
				l = e.Done()
				checkList(t, fmt.Sprintf("step %d", step), l, model)
				checkDiff(t, prev.want, model, l, prev.l)
			}
			for i, v := range old {
				checkList(t, fmt.Sprintf("old version %d", i), v.l, v.want)
			}
		})
	}
}

func TestMachineListZeroAndNew(t *testing.T) {
	var l MachineList
	checkList(t, "zero", l, nil)
	if _, ok := l.Get("x"); ok {
		t.Fatal("zero list has x")
	}
	a, b, b2 := mach("a", 1), mach("b", 1), mach("b", 2)
	l = NewMachineList(b, a, b2)
	checkList(t, "new", l, []*Machine{a, b2})
	if _, ok := l.Get("c"); ok {
		t.Fatal("list has c")
	}
	e := editMachines(l)
	e.Delete("a")
	e.Delete("b")
	checkList(t, "emptied", e.Done(), nil)
	checkList(t, "old after emptying", l, []*Machine{a, b2})
}

// TestMachineListAllNoAlloc: the query path ranges over App.Machines.All;
// it must not allocate.
func TestMachineListAllNoAlloc(t *testing.T) {
	ms := make([]*Machine, 500)
	for i := range ms {
		ms[i] = mach(fmt.Sprintf("%04d", i), i)
	}
	l := NewMachineList(ms...)
	n := 0
	if a := testing.AllocsPerRun(10, func() {
		for _, m := range l.All() {
			if m.Region != "" {
				n++
			}
		}
	}); a != 0 {
		t.Fatalf("All allocates %v times per range", a)
	}
}

// machineSlots are the addresses of the slots that hold an app's machine
// pointers: two versions of an app share a slot when its storage is
// shared, not copied.
func machineSlots(a *App) map[uintptr]bool {
	slots := map[uintptr]bool{}
	for _, c := range a.Machines.chunks {
		for j := range c.ms {
			slots[uintptr(unsafe.Pointer(&c.ms[j]))] = true
		}
	}
	return slots
}

// TestApplyOneMachineSharesChunks: one machine event in an app of 2,000
// machines must copy at most one chunk of the app's machine list — every
// other slot is shared with the previous version — so the apply costs in
// proportion to the change, not to the app.
func TestApplyOneMachineSharesChunks(t *testing.T) {
	evs, key := benchRegistry(1, 1, 2000)
	s := NewStore(DefaultPrefix)
	rev := int64(len(evs))
	s.Replace(rev, evs)
	before := s.Snapshot().Org("org0").App("app0")
	k := mustParseKey(t, DefaultPrefix+key)
	for _, c := range []struct {
		what  string
		value string // "" deletes
	}{
		{"replace", `{"region":"ams","ip":"fdaa:0:0:0:3e8:6::2","state":"stopped"}`},
		{"delete", ""},
		{"insert", `{"region":"ams","ip":"fdaa:0:0:0:3e8:6::2","state":"started"}`},
	} {
		rev++
		ev := Event{Key: DefaultPrefix + key, Value: []byte(c.value), CreateRevision: 1, ModRevision: rev, Delete: c.value == ""}
		s.Apply(rev, []Event{ev})
		if n := s.InvalidCount(); n != 0 {
			t.Fatalf("%s: %d invalid", c.what, n)
		}
		after := s.Snapshot().Org("org0").App("app0")
		if after == before {
			t.Fatalf("%s: app not rebuilt", c.what)
		}
		old, cur := machineSlots(before), machineSlots(after)
		copied := 0
		for p := range cur {
			if !old[p] {
				copied++
			}
		}
		if copied > maxChunk {
			t.Errorf("%s of machine %s: %d of the app's %d machine slots are new, want at most %d (one chunk)",
				c.what, k.Name, copied, len(cur), maxChunk)
		}
		if want := c.value != ""; (after.Machine(k.Name) != nil) != want {
			t.Errorf("%s: machine %s served %v, want %v", c.what, k.Name, !want, want)
		}
		before = after
	}
}
