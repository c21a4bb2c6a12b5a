package registry

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestComparerMatchesDiffSnapshots: the page-by-page comparison of a
// snapshot with etcd's keys names exactly the paths DiffSnapshots names
// between that snapshot and a full load of the keys. Registries are random
// over a small key space full of conflicts (shared networks, addresses
// outside their network, invalid values, machines without their org), and
// the snapshot is a load of the same registry after a few random changes.
func TestComparerMatchesDiffSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	nets := []string{"fdaa:0:1::/48", "fdaa:0:2::/48", "fdaa:0:3::/48"}
	orgs := []string{"a", "b", "c", "d"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	addr := func() string {
		return strings.TrimSuffix(pick(nets), "::/48") + ":1:" + strconv.FormatInt(int64(rng.IntN(4)+1), 16) + "::2"
	}
	value := func(key string) string {
		if rng.IntN(10) == 0 {
			return pick([]string{`{"broken"`, `null`, `{"network":"fdaa:0:1::/64"}`, `{"ip":"10.0.0.1"}`, `[]`})
		}
		switch {
		case strings.HasPrefix(key, "orgs/"):
			return `{"network":"` + pick(nets) + `"}`
		case strings.HasPrefix(key, "apps/"):
			if rng.IntN(2) == 0 {
				return `{}`
			}
			return `{"flycast":"` + addr() + `"}`
		case strings.HasPrefix(key, "machines/"):
			meta := ""
			if rng.IntN(4) == 0 {
				meta = `,"metadata":{"role":"` + pick([]string{"primary", "replica"}) + `"}`
			}
			return `{"region":"` + pick([]string{"ams", "iad", "syd"}) + `","ip":"` + addr() + `","state":"` +
				pick(States) + `","skip_registration":` + strconv.FormatBool(rng.IntN(8) == 0) + meta + `}`
		case strings.HasPrefix(key, "peers/"):
			return `{"ip":"` + addr() + `","region":"` + pick([]string{"ams", "iad"}) + `"}`
		case strings.HasPrefix(key, "regions/"):
			return `{"lat":` + strconv.Itoa(rng.IntN(3)) + `,"lon":1}`
		}
		return `{"endpoint":"192.0.2.` + strconv.Itoa(rng.IntN(2)+1) + `:51820","public_key":"` + wgKey + `"}`
	}
	randomKey := func() string {
		o := pick(orgs)
		switch rng.IntN(10) {
		case 0:
			return "orgs/" + o
		case 1:
			return "apps/" + o + "/" + pick([]string{"web", "db", "web-2"})
		case 2:
			return "peers/" + o + "/" + pick([]string{"p1", "p2"})
		case 3:
			return pick([]string{"regions/ams", "regions/iad", "gateways/ams", "gateways/iad", "bogus/key"})
		}
		return "machines/" + o + "/" + pick([]string{"web", "db", "web-2"}) + "/" + pick([]string{"1", "2", "3", "a1"})
	}
	mutate := func(f *fakeEtcd, n int) {
		for range n {
			k := randomKey()
			if _, ok := f.kvs[f.prefix+k]; ok && rng.IntN(3) == 0 {
				f.del(f.prefix + k)
			} else {
				f.put(f.prefix+k, value(k))
			}
		}
	}
	drifted := 0
	for trial := range 3000 {
		truth := newFakeEtcd()
		mutate(truth, 5+rng.IntN(40))
		other := &fakeEtcd{prefix: truth.prefix, rev: truth.rev, kvs: maps.Clone(truth.kvs), history: map[string][]fakeKV{}}
		for k, h := range truth.history {
			other.history[k] = slices.Clone(h)
		}
		mutate(other, rng.IntN(4))
		// What the reconcile's repair would serve: a full load of etcd
		// replacing the snapshot (whose claims it keeps where they hold).
		s := other.reloaded()
		snap := s.Snapshot()
		truth.reload(s)
		want := DiffSnapshots(snap, s.Snapshot())
		got := diffEvents(truth.prefix, snap, truth.contents(), truth.getAt)
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		drifted++
		if !reflect.DeepEqual(got, want) {
			var keys []string
			for _, ev := range truth.contents() {
				keys = append(keys, strings.TrimPrefix(ev.Key, truth.prefix)+" "+string(ev.Value))
			}
			t.Fatalf("trial %d: comparer found %v, DiffSnapshots %v\netcd:\n%s\nsnapshot:\n%s",
				trial, got, want, strings.Join(keys, "\n"), dump(t, snap))
		}
	}
	if drifted < 500 {
		t.Errorf("only %d of 3000 trials had drift to find", drifted)
	}
}

// sameMachine lists Machine's fields by hand: a new field must be added
// there, or reconcile would not see it change.
func TestSameMachineComparesEveryField(t *testing.T) {
	if n := reflect.TypeFor[Machine]().NumField(); n != 12 {
		t.Fatalf("Machine has %d fields, sameMachine compares 12: add the new one", n)
	}
}
