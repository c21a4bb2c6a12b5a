package registry

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// takeoverEtcd is a fakeEtcd where alfa (created first) was written onto
// bravo's network and bravo's key was then rewritten with its network, and
// a Store that followed every write.
func takeoverEtcd(t *testing.T) (*fakeEtcd, *Store) {
	t.Helper()
	f := newFakeEtcd()
	s := NewStore(DefaultPrefix)
	s.Replace(f.rev, f.load(t, takeoverInitial))
	s.Apply(f.rev, f.step(t, `put orgs/alfa {"network":"fdaa:0:2::/48"}`))
	s.Apply(f.rev, f.step(t, `put orgs/bravo {"network":"fdaa:0:2::/48","updated_at":"2025-03-01T12:00:00Z"}`))
	if got := normText(dump(t, s.Snapshot())); got != normText(bravoHolds) {
		t.Fatalf("watch: snapshot:\n%s", got)
	}
	return f, s
}

// bravoCreated is the revision bravo's key was created at (its claim).
const bravoCreated = 2

func TestFullLoadDatesClaims(t *testing.T) {
	t.Run("holder never rewritten: its create revision, without history", func(t *testing.T) {
		f := newFakeEtcd()
		f.load(t, takeoverInitial)
		f.step(t, `put orgs/alfa {"network":"fdaa:0:2::/48"}`)
		f.compacted = f.rev + 1
		r := NewStore(DefaultPrefix)
		r.Replace(f.rev, f.contents())
		if got := normText(dump(t, r.Snapshot())); got != normText(bravoHolds) {
			t.Fatalf("snapshot:\n%s", got)
		}
		checkInvalid(t, "full load", r, alfaRefused)
	})
	t.Run("holder rewritten: its claim read back from etcd's history", func(t *testing.T) {
		f, _ := takeoverEtcd(t)
		r := f.reloaded()
		if got := normText(dump(t, r.Snapshot())); got != normText(bravoHolds) {
			t.Fatalf("snapshot:\n%s", got)
		}
		if c := r.Snapshot().Org("bravo").Claim; c.Rev != bravoCreated {
			t.Errorf("bravo's claim %+v, want rev %d", c, bravoCreated)
		}
	})
	t.Run("holder rewritten, history compacted: the replaced snapshot's claim is kept", func(t *testing.T) {
		f, s := takeoverEtcd(t)
		f.compacted = f.rev + 1
		f.reload(s)
		if got := normText(dump(t, s.Snapshot())); got != normText(bravoHolds) {
			t.Fatalf("snapshot:\n%s", got)
		}
		checkInvalid(t, "full load", s, alfaRefused)
		if c := s.Snapshot().Org("bravo").Claim; c.Rev != bravoCreated {
			t.Errorf("bravo's claim %+v, want rev %d", c, bravoCreated)
		}
	})
	t.Run("history compacted before the takeover: the holder's bound is older", func(t *testing.T) {
		f := newFakeEtcd()
		f.load(t, takeoverInitial)
		f.step(t, `put orgs/bravo {"network":"fdaa:0:2::/48","updated_at":"2025-03-01T12:00:00Z"}`)
		f.compacted = f.rev + 1
		f.step(t, `put orgs/alfa {"network":"fdaa:0:2::/48"}`)
		r := f.reloaded()
		if got := normText(dump(t, r.Snapshot())); got != normText(bravoHolds) {
			t.Fatalf("snapshot:\n%s", got)
		}
	})
}

// TestReconcileAgreesAfterTakeover: the comparer, which dates claims like a
// full load replacing the snapshot it checks, finds nothing to repair in a
// snapshot that refused a takeover — whether the snapshot was built by the
// watch or by a full load, with or without etcd's history to read.
func TestReconcileAgreesAfterTakeover(t *testing.T) {
	f, s := takeoverEtcd(t)
	for _, snap := range []struct {
		name string
		s    *Snapshot
	}{{"watch", s.Snapshot()}, {"full load", f.reloaded().Snapshot()}} {
		for _, getAt := range []struct {
			name string
			fn   func(string, int64) (Event, bool, error)
		}{{"history", f.getAt}, {"no history", nil}} {
			if diff := diffEvents(DefaultPrefix, snap.s, f.contents(), getAt.fn); len(diff) != 0 {
				t.Errorf("%s, %s: comparer found drift %v", snap.name, getAt.name, diff)
			}
		}
	}
	// A snapshot that let the takeover through is drift: say, a local
	// copy written by a server that dated claims by create revision (no
	// claims in it), loaded after an upgrade.
	bad := NewStore(DefaultPrefix)
	bad.Replace(f.rev, []Event{{Key: DefaultPrefix + "orgs/alfa", Value: []byte(`{"network":"fdaa:0:2::/48"}`)}})
	if diff := diffEvents(DefaultPrefix, bad.Snapshot(), f.contents(), f.getAt); len(diff) == 0 {
		t.Error("a snapshot serving the squatter shows no drift")
	}
}

// TestLocalCopyKeepsClaims: the local copy holds each org's claim, so a
// server restarted from it still refuses the squatter, through the watch
// and through a full load that cannot read history; a copy written before
// claims were kept still loads.
func TestLocalCopyKeepsClaims(t *testing.T) {
	f, s := takeoverEtcd(t)
	path := filepath.Join(t.TempDir(), "local-copy.json.gz")
	if err := WriteCopy(path, DefaultPrefix, 1, s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	r := NewStore(DefaultPrefix)
	if _, err := r.LoadCopy(path, DefaultPrefix); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bravo"} {
		if got, want := r.Snapshot().Org(name).Claim, s.Snapshot().Org(name).Claim; got != want {
			t.Errorf("%s: claim %+v after the copy, want %+v", name, got, want)
		}
	}
	// The watch resumes: the squatter is written again.
	r.Apply(f.rev, f.step(t, `put orgs/alfa {"network":"fdaa:0:2::/48","updated_at":"2025-03-02T12:00:00Z"}`))
	if got := normText(dump(t, r.Snapshot())); got != normText(bravoHolds) {
		t.Fatalf("watch after the copy: snapshot:\n%s", got)
	}
	// A full load replacing the copy's snapshot, etcd's history gone.
	r2 := NewStore(DefaultPrefix)
	if _, err := r2.LoadCopy(path, DefaultPrefix); err != nil {
		t.Fatal(err)
	}
	f.compacted = f.rev + 1
	f.reload(r2)
	if got := normText(dump(t, r2.Snapshot())); got != normText(bravoHolds) {
		t.Fatalf("full load after the copy: snapshot:\n%s", got)
	}

	// The format before claims: [path, value] for an org too.
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(`{"format":"meshdns-local-copy/1","prefix":"/meshdns/v1/","cluster_id":1,"revision":9}
["orgs/bravo",{"network":"fdaa:0:2::/48"}]
{"end":true,"count":1}
`))
	zw.Close()
	old := filepath.Join(t.TempDir(), "old.json.gz")
	if err := os.WriteFile(old, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r3 := NewStore(DefaultPrefix)
	if _, err := r3.LoadCopy(old, DefaultPrefix); err != nil {
		t.Fatalf("old copy: %v", err)
	}
	if o := r3.Snapshot().Org("bravo"); o == nil || o.Claim.Rev != 0 {
		t.Fatalf("old copy: bravo %+v", o)
	}
}

// TestWriterPutAllRefusesTakeover: PutAll refuses an org naming a network
// another org names, and its checks are guarded: an org naming the batch's
// network, or an org of the batch changing, between the check and the
// write makes it fail without writing the checked values.
func TestWriterPutAllRefusesTakeover(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	ctx := ctxT(t)
	net1, net2 := netip.MustParsePrefix("fdaa:0:1::/48"), netip.MustParsePrefix("fdaa:0:2::/48")
	net3, net4 := netip.MustParsePrefix("fdaa:0:3::/48"), netip.MustParsePrefix("fdaa:0:4::/48")
	for _, o := range []OrgValue{{Name: "alfa", Network: net1}, {Name: "bravo", Network: net2}} {
		if err := w.PutOrg(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	notWritten := func(k Key) {
		t.Helper()
		if _, err := w.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s was written: %v", k, err)
		}
	}

	// The older org moved onto the younger one's network.
	before := etcdRevision(t, cli)
	_, err := w.PutAll(ctx, []Item{&OrgValue{Name: "alfa", Network: net2}})
	checkErr(t, err, "item 1|org alfa|network fdaa:0:2::/48|already belongs to org bravo")
	if after := etcdRevision(t, cli); after != before {
		t.Errorf("a refused PutAll wrote: revision %d -> %d", before, after)
	}

	// Another org names the batch's network after the check.
	w.beforeCommit = func() {
		if err := w.PutOrg(ctx, OrgValue{Name: "delta", Network: net3}); err != nil {
			t.Error(err)
		}
	}
	_, err = w.PutAll(ctx, []Item{&OrgValue{Name: "gamma", Network: net3},
		&Machine{Org: "gamma", App: "web", ID: "0c1", Region: "ams", IP: addr("fdaa:0:3:a7b::2"), State: StateStarted}})
	checkErr(t, err, "orgs/gamma|changed while writing|try again")
	notWritten(OrgKey("gamma"))
	notWritten(MachineKey("gamma", "web", "0c1"))

	// The org of a machine changes network after the check.
	w.beforeCommit = func() {
		if err := w.PutOrg(ctx, OrgValue{Name: "alfa", Network: net4}); err != nil {
			t.Error(err)
		}
	}
	_, err = w.PutAll(ctx, []Item{&Machine{Org: "alfa", App: "web", ID: "0a1", Region: "ams", IP: addr("fdaa:0:1:a7b::2"), State: StateStarted}})
	checkErr(t, err, "org of the batch changed while writing|try again")
	notWritten(MachineKey("alfa", "web", "0a1"))

	// A member of an org is written after the check that the org's new
	// network holds its members.
	w.beforeCommit = func() {
		if err := w.PutMachine(ctx, Machine{Org: "alfa", App: "db", ID: "0a2", Region: "ams", IP: addr("fdaa:0:4:a7b::3"), State: StateStarted}); err != nil {
			t.Error(err)
		}
	}
	_, err = w.PutAll(ctx, []Item{&OrgValue{Name: "alfa", Network: net1}})
	checkErr(t, err, "changed while writing|try again")
	if v, err := w.Get(ctx, OrgKey("alfa")); err != nil || v.(*OrgValue).Network != net4 {
		t.Errorf("alfa is %+v, %v; want it left on %s", v, err, net4)
	}
	w.beforeCommit = nil

	// The holder may be written again with its network while a squatter
	// (written past the Writer) names it: that keeps its claim.
	if _, err := cli.Put(ctx, DefaultPrefix+"orgs/alfa", `{"network":"fdaa:0:2::/48"}`); err != nil {
		t.Fatal(err)
	}
	if err := w.PutOrg(ctx, OrgValue{Name: "bravo", Network: net2}); err != nil {
		t.Errorf("PutOrg of the holder with its own network: %v", err)
	}
	if _, err := w.PutAll(ctx, []Item{&OrgValue{Name: "bravo", Network: net2}}); err != nil {
		t.Errorf("PutAll of the holder with its own network: %v", err)
	}
	_, err = w.PutAll(ctx, []Item{&OrgValue{Name: "echo", Network: net2}})
	checkErr(t, err, "org echo|already belongs to org")
}
