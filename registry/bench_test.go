package registry

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// benchRegistry returns the load events of a registry of orgs orgs, each
// with apps apps of perApp machines, and the key of one machine in the
// middle of it.
func benchRegistry(orgs, apps, perApp int) ([]Event, string) {
	evs := make([]Event, 0, orgs*(1+apps*perApp))
	rev := int64(0)
	add := func(key, value string) {
		rev++
		evs = append(evs, Event{Key: DefaultPrefix + key, Value: []byte(value), CreateRevision: rev, ModRevision: rev})
	}
	for o := range orgs {
		add(fmt.Sprintf("orgs/org%d", o), fmt.Sprintf(`{"network":"fdaa:%x:%x::/48"}`, o/0x10000, o%0x10000))
		for a := range apps {
			for m := range perApp {
				i := a*perApp + m
				add(fmt.Sprintf("machines/org%d/app%d/%x", o, a, 0x10000+i),
					fmt.Sprintf(`{"region":"%s","ip":"fdaa:%x:%x:%x:%x:%x::2","state":"started","updated_at":"2025-03-01T12:00:00Z"}`,
						[]string{"ams", "iad", "syd", "nrt"}[i%4], o/0x10000, o%0x10000, a, m, i%7))
			}
		}
	}
	return evs, fmt.Sprintf("machines/org%d/app%d/%x", orgs/2, apps/2, 0x10000+(apps/2)*perApp+perApp/2)
}

// BenchmarkApplyOneMachine measures one machine event (a state change) on
// registries of growing size. The cost must depend on the size of the app
// the machine is in (50 machines here), not on the size of the registry or
// of the org; and, in an app of 2,000 machines (the last case), on a chunk
// of the app's machine list (MachineList), not on the app.
func BenchmarkApplyOneMachine(b *testing.B) {
	for _, bc := range []struct {
		name               string
		orgs, apps, perApp int
	}{
		{"orgs=10/machines=10k", 10, 20, 50},
		{"orgs=10/machines=100k", 10, 200, 50},
		{"orgs=1/apps=200/machines=10k", 1, 200, 50},
		{"orgs=1/apps=2000/machines=100k", 1, 2000, 50},
		{"orgs=1000/machines=100k", 1000, 2, 50},
		{"orgs=1/apps=1/machines=2k", 1, 1, 2000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs, key := benchRegistry(bc.orgs, bc.apps, bc.perApp)
			s := NewStore(DefaultPrefix)
			rev := int64(len(evs))
			s.Replace(rev, evs)
			var ip string
			for _, ev := range evs {
				if ev.Key == DefaultPrefix+key {
					var m Machine
					v, _ := Decode(mustParseKey(b, ev.Key), ev.Value)
					m = *v.(*Machine)
					ip = m.IP.String()
				}
			}
			vals := [2][]byte{
				fmt.Appendf(nil, `{"region":"ams","ip":"%s","state":"stopped"}`, ip),
				fmt.Appendf(nil, `{"region":"ams","ip":"%s","state":"started"}`, ip),
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rev++
				s.Apply(rev, []Event{{Key: DefaultPrefix + key, Value: vals[i%2], CreateRevision: 1, ModRevision: rev}})
				i++
			}
			if s.InvalidCount() != 0 {
				b.Fatalf("%d invalid", s.InvalidCount())
			}
		})
	}
}

// BenchmarkLoad100k measures a full load (Replace) of 100,000 machines in 10
// orgs of 200 apps each.
func BenchmarkLoad100k(b *testing.B) {
	evs, _ := benchRegistry(10, 200, 50)
	b.ReportAllocs()
	for b.Loop() {
		s := NewStore(DefaultPrefix)
		s.Replace(int64(len(evs)), evs)
		if s.Snapshot().OrgCount() != 10 {
			b.Fatal("not loaded")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/key")
}

func mustParseKey(tb testing.TB, key string) Key {
	k, err := ParseKey(DefaultPrefix, key)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// BenchmarkLoadScaleShape measures a full load of meshbench scale's shape
// (many small orgs: 10 apps of 10 machines each), scaled down to 100,000
// machines in 1,000 orgs, and the heap the loaded store keeps per machine.
func BenchmarkLoadScaleShape(b *testing.B) {
	evs, _ := benchRegistry(1000, 10, 10)
	b.ReportAllocs()
	var s *Store
	for b.Loop() {
		s = NewStore(DefaultPrefix)
		s.Replace(int64(len(evs)), evs)
		if s.Snapshot().OrgCount() != 1000 {
			b.Fatal("not loaded")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/key")
	b.StopTimer()
	var before, after runtime.MemStats
	s = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	s = NewStore(DefaultPrefix)
	s.Replace(int64(len(evs)), evs)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(evs)), "heapB/key")
	runtime.KeepAlive(s)
}

// BenchmarkReconcile100k compares a loaded snapshot of 100,000 machines
// (scale shape) with the same keys: page by page (what Reconcile does) and
// by building a second store and diffing (what it did before). B/op is the
// point: the memory a reconcile needs.
func BenchmarkReconcile100k(b *testing.B) {
	evs, _ := benchRegistry(1000, 10, 10)
	s := NewStore(DefaultPrefix)
	s.Replace(int64(len(evs)), evs)
	snap := s.Snapshot()
	b.Run("pages", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := newComparer(DefaultPrefix, snap)
			for _, ev := range evs {
				if strings.HasPrefix(ev.Key, DefaultPrefix+"orgs/") {
					c.org(ev)
				}
			}
			c.orgsDone()
			for _, ev := range evs {
				c.add(ev)
			}
			if d := c.finish(); len(d) != 0 {
				b.Fatal(d[:min(len(d), 5)])
			}
		}
	})
	b.Run("second-store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fresh := NewStore(DefaultPrefix)
			fresh.Replace(int64(len(evs)), evs)
			if d := DiffSnapshots(snap, fresh.Snapshot()); len(d) != 0 {
				b.Fatal(d[:min(len(d), 5)])
			}
		}
	})
}

// BenchmarkWriteCopy100k writes the local copy of 100,000 machines (scale
// shape). B/op is the garbage a save makes.
func BenchmarkWriteCopy100k(b *testing.B) {
	evs, _ := benchRegistry(1000, 10, 10)
	s := NewStore(DefaultPrefix)
	s.Replace(int64(len(evs)), evs)
	path := b.TempDir() + "/local-copy.json.gz"
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteCopy(path, DefaultPrefix, 1, s.Snapshot()); err != nil {
			b.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size()), "file-bytes")
	}
}

// BenchmarkAddrIndexBuild is the one-off cost of an org version's reverse
// name index (the first reverse question after each change of the org).
func BenchmarkAddrIndexBuild(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			var sb strings.Builder
			sb.WriteString(`orgs/acme {"network":"fdaa:0:18::/48"}` + "\n")
			for i := range n {
				fmt.Fprintf(&sb, `machines/acme/web/%06x {"region":"ams","ip":"fdaa:0:18:%x:%x::2","state":"started"}`+"\n", i, i>>8, i&0xff)
			}
			snap, _, err := SnapshotFromText(sb.String())
			if err != nil {
				b.Fatal(err)
			}
			o := snap.Org("acme")
			b.ReportAllocs()
			for b.Loop() {
				o.addrIdx.Store(nil)
				o.HasAddrUnder([16]byte{0xfd, 0xaa}, 4)
			}
		})
	}
}

// BenchmarkMachineListRange ranges over the 2,000 machines of an app: via
// MachineList.All (the query path) and, for reference, over a flat slice
// (what App.Machines was). The ranges are in functions of their own: b.Loop
// keeps the calls in its body from being inlined, which a range over
// All needs to compile to a plain loop.
func BenchmarkMachineListRange(b *testing.B) {
	ms := make([]*Machine, 2000)
	for i := range ms {
		ms[i] = &Machine{ID: fmt.Sprintf("%06x", i), State: StateStarted}
	}
	l := NewMachineList(ms...)
	flat := l.Slice()
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			startedInList(l)
		}
	})
	b.Run("slice", func(b *testing.B) {
		for b.Loop() {
			startedInSlice(flat)
		}
	})
}

func startedInList(l MachineList) (n int) {
	for _, m := range l.All() {
		if m.Started() {
			n++
		}
	}
	return n
}

func startedInSlice(ms []*Machine) (n int) {
	for _, m := range ms {
		if m.Started() {
			n++
		}
	}
	return n
}
