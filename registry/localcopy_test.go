package registry

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const copyRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
orgs/beta {"network":"fdaa:0:19::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
apps/acme/empty {}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"role":"primary"}}
machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"stopped","process_group":"worker"}
machines/acme/web/0a03 {"region":"iad","ip":"fdaa:0:18:a7b:1::4","state":"destroyed"}
machines/beta/db/0b01 {"region":"syd","ip":"fdaa:0:19:a7b:1::2","state":"started"}
peers/acme/laptop {"ip":"fdaa:0:18:fffe::1","region":"ams","public_key":"K5sF7Zk5Hh0Nf6JqSTVQp8o2qWr7xUJbgV8nUwVvKnA="}
regions/xyz {"name":"Somewhere","lat":10.5,"lon":-20.25}
gateways/ams {"endpoint":"203.0.113.7:51820","public_key":"K5sF7Zk5Hh0Nf6JqSTVQp8o2qWr7xUJbgV8nUwVvKnA="}
`

// served lists what a snapshot answers with, for comparing two snapshots.
func served(s *Snapshot) map[string]any {
	out := map[string]any{"regions": s.Regions(), "gateways": s.gateways}
	s.RangeOrgs(func(o *Org) bool {
		out["org/"+o.Name] = o.Network
		for _, an := range o.AppNames() {
			a := o.App(an)
			out["app/"+o.Name+"/"+an] = a.Flycast
			for _, m := range a.Machines.All() {
				out["machine/"+o.Name+"/"+an+"/"+m.ID] = *m
			}
		}
		for _, pn := range o.PeerNames() {
			out["peer/"+o.Name+"/"+pn] = *o.Peer(pn)
		}
		return true
	})
	return out
}

func TestLocalCopyRoundTrip(t *testing.T) {
	snap, _, err := SnapshotFromText(copyRegistry)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "local-copy.json.gz")
	if err := WriteCopy(path, DefaultPrefix, 42, snap); err != nil {
		t.Fatal(err)
	}
	st := NewStore(DefaultPrefix)
	cluster, err := st.LoadCopy(path, DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	got := st.Snapshot()
	if cluster != 42 || got.Revision != snap.Revision || !got.Stale {
		t.Fatalf("cluster %d revision %d stale %v", cluster, got.Revision, got.Stale)
	}
	if !reflect.DeepEqual(served(got), served(snap)) {
		t.Fatalf("copy differs:\n got %v\nwant %v", served(got), served(snap))
	}
	// A later change applies on top, as a resumed watch would.
	evs, _ := ParseText(DefaultPrefix, `machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped"}`)
	st.Apply(got.Revision+1, evs)
	if m := st.Snapshot().Org("acme").App("web").Machine("0a01"); m.State != StateStopped || st.Snapshot().Stale {
		t.Fatalf("after apply: %+v stale=%v", m, st.Snapshot().Stale)
	}
}

func TestLocalCopyRejected(t *testing.T) {
	snap, _, err := SnapshotFromText(copyRegistry)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := WriteCopy(good, DefaultPrefix, 1, snap); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0xff
	for name, content := range map[string][]byte{
		"cut off":   data[:len(data)-20],
		"bit flip":  flipped,
		"not gzip":  []byte("hello"),
		"empty":     nil,
		"too short": data[:30],
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			st := NewStore(DefaultPrefix)
			if _, err := st.LoadCopy(p, DefaultPrefix); err == nil {
				t.Fatal("corrupt copy accepted")
			}
			if st.Snapshot() != nil {
				t.Fatal("corrupt copy published")
			}
		})
	}
	t.Run("other prefix", func(t *testing.T) {
		st := NewStore("/other/")
		if _, err := st.LoadCopy(good, "/other/"); err == nil || st.Snapshot() != nil {
			t.Fatalf("foreign copy accepted: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := NewStore(DefaultPrefix).LoadCopy(filepath.Join(dir, "nope"), DefaultPrefix); !errors.Is(err, ErrNoCopy) {
			t.Fatalf("got %v, want ErrNoCopy", err)
		}
	})
}

// writeGzip writes a gzip file of head followed by n bytes of fill.
func writeGzip(t *testing.T, path, head string, fill byte, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	zw.Write([]byte(head))
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for n > 0 {
		k := min(n, len(chunk))
		zw.Write(chunk[:k])
		n -= k
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLocalCopyBombsRejected: a small file that decompresses to a huge
// one (whitespace, one endless line) is rejected with an error naming the
// limit, having used little memory; a copy over the decompressed limit is
// rejected too. Reading used to buffer all the whitespace: a 264 KB file
// took 493 MB.
func TestLocalCopyBombsRejected(t *testing.T) {
	dir := t.TempDir()
	header := `{"format":"meshdns-local-copy/1","prefix":"/meshdns/v1/","cluster_id":1,"revision":5}` + "\n"
	const huge = 256 << 20
	for _, tc := range []struct {
		name, head string
		fill       byte
		want       string
	}{
		{"spaces after the header", header, ' ', "longer than"},
		{"spaces before the header", "", ' ', "longer than"},
		{"newlines after the header", header, '\n', "malformed"},
		{"one endless entry", header + `["machines/acme/web/0a01",{"region":"`, 'a', "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "bomb")
			writeGzip(t, p, tc.head, tc.fill, huge)
			fi, _ := os.Stat(p)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			st := NewStore(DefaultPrefix)
			_, err := st.LoadCopy(p, DefaultPrefix)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte file of %d MiB: %v; allocated %d KiB", fi.Size(), huge>>20, err, alloc>>10)
			if err == nil || !strings.Contains(err.Error(), tc.want) || st.Snapshot() != nil {
				t.Fatalf("got %v, want an error mentioning %q and nothing published", err, tc.want)
			}
			if alloc > 32<<20 {
				t.Fatalf("reading the %d-byte file allocated %d MiB", fi.Size(), alloc>>20)
			}
		})
	}
	t.Run("over the decompressed limit", func(t *testing.T) {
		snap, _, err := SnapshotFromText(copyRegistry)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "copy")
		if err := WriteCopy(p, DefaultPrefix, 1, snap); err != nil {
			t.Fatal(err)
		}
		if _, err := NewStore(DefaultPrefix).loadCopy(p, DefaultPrefix, copyLimits{line: 1 << 20, ratio: 1, floor: 100}); err == nil || !strings.Contains(err.Error(), "decompresses to more than") {
			t.Fatalf("got %v, want the decompressed limit named", err)
		}
		if _, err := NewStore(DefaultPrefix).loadCopy(p, DefaultPrefix, copyLimits{line: 1 << 20, ratio: 1, floor: 1 << 20}); err != nil {
			t.Fatalf("within the limits: %v", err)
		}
	})
}
