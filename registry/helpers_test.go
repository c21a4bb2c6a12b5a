package registry

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dump renders a snapshot as readable text, one object per line, sorted:
//
//	org acme fdaa:0:18::/48
//	app acme/web flycast=fdaa:0:18:0:1::5
//	machine acme/web/0a1 ams started fdaa:0:18:a7b:1::2 group=worker meta=role:primary
//	peer acme/alice ams fdaa:0:18:a7b:9::2
//	owners acme fdaa:0:18:a7b:1::2=web/0a1 fdaa:0:18:a7b:9::2=peer/alice
//	region ams 52.31 4.77
//	gateway ams 203.0.113.7:51820
//
// It also checks that the snapshot's indexes agree with each other (org by
// name and by network, sorted app and peer names, machines by id, owners of
// every address), so every test that dumps a snapshot checks those too.
func dump(t testing.TB, s *Snapshot) string {
	t.Helper()
	if s == nil {
		return "<nil>"
	}
	var b strings.Builder
	var orgs []*Org
	s.RangeOrgs(func(o *Org) bool { orgs = append(orgs, o); return true })
	slices.SortFunc(orgs, func(x, y *Org) int { return cmp.Compare(x.Name, y.Name) })
	if len(orgs) != s.OrgCount() {
		t.Errorf("dump: RangeOrgs gave %d orgs, OrgCount says %d", len(orgs), s.OrgCount())
	}
	if s.nets.Len() != len(orgs) || s.names.Len() != len(orgs) {
		t.Errorf("dump: %d networks and %d names indexed for %d orgs", s.nets.Len(), s.names.Len(), len(orgs))
	}
	s.names.Range(func(name string, nk netKey) bool {
		if o, _ := s.nets.Get(nk); o == nil || o.Name != name {
			t.Errorf("dump: name index entry %s points at network %x, which holds %v", name, nk, o)
		}
		return true
	})
	s.nets.Range(func(nk netKey, o *Org) bool {
		if s.Org(o.Name) != o || netKeyOf(o.Network.Addr()) != nk {
			t.Errorf("dump: network index entry %x points at org %s (%s) which is not the served one", nk, o.Name, o.Network)
		}
		return true
	})
	for _, o := range orgs {
		dumpOrg(t, &b, s, o)
	}
	for _, code := range sortedKeys(s.Regions()) {
		r := s.Region(code)
		fmt.Fprintf(&b, "region %s %v %v\n", code, r.Lat, r.Lon)
	}
	for _, code := range sortedKeys(s.gateways) {
		if s.Gateway(code) == nil {
			t.Errorf("dump: Gateway(%q) is nil", code)
			continue
		}
		fmt.Fprintf(&b, "gateway %s %s\n", code, s.Gateway(code).Endpoint)
	}
	return b.String()
}

func dumpOrg(t testing.TB, b *strings.Builder, s *Snapshot, o *Org) {
	t.Helper()
	fmt.Fprintf(b, "org %s %s\n", o.Name, o.Network)
	if s.Org(o.Name) != o {
		t.Errorf("dump: Org(%q) is not the org RangeOrgs gave", o.Name)
	}
	for _, a := range []netip.Addr{o.Network.Addr(), o.APIAddr(), lastAddr(o.Network)} {
		if s.OrgOf(a) != o {
			t.Errorf("dump: OrgOf(%s) = %v, want org %s", a, s.OrgOf(a), o.Name)
		}
	}
	var apps []string
	o.apps.Range(func(n string, _ *App) bool { apps = append(apps, n); return true })
	sort.Strings(apps)
	if !slices.Equal(apps, o.AppNames()) {
		t.Errorf("dump: org %s: AppNames() = %v, apps held = %v", o.Name, o.AppNames(), apps)
	}
	// wantOwners is every address that must have an owner.
	wantOwners := map[netip.Addr]Owner{}
	for _, name := range apps {
		a := o.App(name)
		if a.Org != o.Name || a.Name != name {
			t.Errorf("dump: app %s/%s calls itself %s/%s", o.Name, name, a.Org, a.Name)
		}
		line := "app " + o.Name + "/" + name
		if a.Flycast.IsValid() {
			line += " flycast=" + a.Flycast.String()
		}
		fmt.Fprintln(b, line)
		for i, m := range a.Machines.All() {
			if i > 0 && a.Machines.At(i-1).ID >= m.ID {
				t.Errorf("dump: app %s/%s: Machines not sorted by id at %d", o.Name, name, i)
			}
			if a.Machine(m.ID) != m || m.Org != o.Name || m.App != name || !m.Deployed() || !o.Network.Contains(m.IP) {
				t.Errorf("dump: app %s/%s: machine %+v is not consistent with its app", o.Name, name, m)
			}
			line := fmt.Sprintf("machine %s/%s/%s %s %s %s", o.Name, name, m.ID, m.Region, m.State, m.IP)
			if m.ProcessGroup != DefaultProcessGroup {
				line += " group=" + m.ProcessGroup
			}
			for _, k := range sortedKeys(m.Metadata) {
				line += " meta=" + k + ":" + m.Metadata[k]
			}
			fmt.Fprintln(b, line)
			wantOwners[m.IP] = Owner{Machine: m}
		}
	}
	peers := sortedKeys(o.peers)
	if !slices.Equal(peers, o.PeerNames()) {
		t.Errorf("dump: org %s: PeerNames() = %v, peers held = %v", o.Name, o.PeerNames(), peers)
	}
	for _, name := range peers {
		p := o.Peer(name)
		if p.Org != o.Name || p.Name != name || !o.Network.Contains(p.IP) {
			t.Errorf("dump: peer %s/%s is not consistent with its org: %+v", o.Name, name, p)
		}
		fmt.Fprintf(b, "peer %s/%s %s %s\n", o.Name, name, cmp.Or(p.Region, "-"), p.IP)
		wantOwners[p.IP] = Owner{Peer: p}
	}
	// Owners: exactly the deployed machines and the peers, nothing stale.
	var owned []string
	var addrs []netip.Addr
	o.owners.Range(func(a netip.Addr, w Owner) bool { addrs = append(addrs, a); return true })
	slices.SortFunc(addrs, netip.Addr.Compare)
	if o.owners.Len() != len(addrs) {
		t.Errorf("dump: org %s: owners.Len() = %d, ranged over %d", o.Name, o.owners.Len(), len(addrs))
	}
	for _, a := range addrs {
		w, _ := o.Owner(a)
		if want, ok := wantOwners[a]; !ok || !sameOwner(want, w) {
			t.Errorf("dump: org %s: owner of %s is %s, want %s", o.Name, a, ownerName(w), ownerName(want))
		}
		owned = append(owned, a.String()+"="+ownerName(w))
	}
	for a, w := range wantOwners {
		if _, ok := o.Owner(a); !ok {
			t.Errorf("dump: org %s: %s has no owner, want %s", o.Name, a, ownerName(w))
		}
	}
	if len(owned) > 0 {
		fmt.Fprintf(b, "owners %s %s\n", o.Name, strings.Join(owned, " "))
	}
}

// sameOwner: the same peer, or the same machine as far as Owner promises
// (address, app, id and region; the rest may be from an older version).
func sameOwner(x, y Owner) bool {
	if x.Machine != nil && y.Machine != nil {
		return x.Machine.Org == y.Machine.Org && sameHolder(x.Machine, y.Machine)
	}
	return x == y
}

func ownerName(w Owner) string {
	switch {
	case w.Machine != nil:
		return w.Machine.App + "/" + w.Machine.ID
	case w.Peer != nil:
		return "peer/" + w.Peer.Name
	}
	return "nobody"
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	for i := p.Bits() / 8; i < 16; i++ {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// normText trims every line and drops blank ones, so expected dumps can be
// indented like the code around them.
func normText(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// fakeEtcd numbers writes the way etcd does: every put or delete is one
// revision, a key keeps its create revision across updates, and a delete
// event carries only the key and the deletion's revision. Tests use it to
// produce realistic events for Store.Apply, and to read back "etcd's
// contents" for a full load to compare against.
type fakeEtcd struct {
	prefix string
	rev    int64
	kvs    map[string]fakeKV
	// history holds every version each key had, oldest first (a delete
	// as a version with deleted set), for reads at past revisions.
	history map[string][]fakeKV
	// compacted is the revision below which history is gone.
	compacted int64
}

type fakeKV struct {
	value                   string
	create, modRev, version int64
	deleted                 bool
}

func newFakeEtcd() *fakeEtcd {
	return &fakeEtcd{prefix: DefaultPrefix, kvs: map[string]fakeKV{}, history: map[string][]fakeKV{}}
}

// load puts ParseText lines, one revision each, and returns them as the
// events of a full load (what Store.Replace takes).
func (f *fakeEtcd) load(t testing.TB, text string) []Event {
	t.Helper()
	evs, err := ParseText(f.prefix, text)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		f.put(ev.Key, string(ev.Value))
	}
	return f.contents()
}

// step applies lines "put <key> <json>" and "del <key>" (keys below the
// prefix) and returns the events etcd would send for them.
func (f *fakeEtcd) step(t testing.TB, text string) []Event {
	t.Helper()
	var evs []Event
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		key, val, _ := strings.Cut(rest, " ")
		switch op {
		case "put":
			evs = append(evs, f.put(f.prefix+key, strings.TrimSpace(val)))
		case "del":
			ev, ok := f.del(f.prefix + key)
			if !ok {
				t.Fatalf("fakeEtcd: del %s: no such key", key)
			}
			evs = append(evs, ev)
		default:
			t.Fatalf("fakeEtcd: line %q: want put or del", line)
		}
	}
	return evs
}

func (f *fakeEtcd) put(key, value string) Event {
	f.rev++
	kv, ok := f.kvs[key]
	if !ok {
		kv.create = f.rev
	}
	kv.value, kv.modRev = value, f.rev
	kv.version++
	f.kvs[key] = kv
	f.history[key] = append(f.history[key], kv)
	return kv.event(key)
}

func (kv fakeKV) event(key string) Event {
	return Event{Key: key, Value: []byte(kv.value), CreateRevision: kv.create, ModRevision: kv.modRev, Version: kv.version}
}

// getAt reads key as it was at revision rev, as etcd's Get WithRev does;
// history below f.compacted is gone.
func (f *fakeEtcd) getAt(key string, rev int64) (Event, bool, error) {
	if rev < f.compacted {
		return Event{}, false, errors.New("fakeEtcd: required revision has been compacted")
	}
	var at *fakeKV
	for i, kv := range f.history[key] {
		if kv.modRev <= rev {
			at = &f.history[key][i]
		}
	}
	if at == nil || at.deleted {
		return Event{}, false, nil
	}
	return at.event(key), true, nil
}

func (f *fakeEtcd) del(key string) (Event, bool) {
	if _, ok := f.kvs[key]; !ok {
		return Event{}, false
	}
	f.rev++
	delete(f.kvs, key)
	f.history[key] = append(f.history[key], fakeKV{modRev: f.rev, deleted: true})
	return Event{Key: key, Delete: true, ModRevision: f.rev}, true
}

// contents is what a full load reads: every key, sorted.
func (f *fakeEtcd) contents() []Event {
	evs := make([]Event, 0, len(f.kvs))
	for _, k := range sortedKeys(f.kvs) {
		kv := f.kvs[k]
		evs = append(evs, kv.event(k))
	}
	return evs
}

// reloaded is a fresh Store loaded with f's contents, as the Syncer loads
// it: claims it can only bound are dated from f's history.
func (f *fakeEtcd) reloaded() *Store {
	s := NewStore(f.prefix)
	f.reload(s)
	return s
}

// reload is a full load of f's contents into s.
func (f *fakeEtcd) reload(s *Store) {
	l := s.BeginLoad()
	for _, ev := range f.contents() {
		l.Add(ev)
	}
	l.ResolveClaims(f.getAt)
	l.Commit(f.rev)
}

// invalidText renders Store.Invalid as "key: reason" lines, keys below the prefix.
func invalidText(s *Store) string {
	inv := s.Invalid()
	var b strings.Builder
	for _, k := range sortedKeys(inv) {
		fmt.Fprintf(&b, "%s: %s\n", strings.TrimPrefix(k, DefaultPrefix), inv[k])
	}
	return b.String()
}
