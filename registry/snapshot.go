package registry

import (
	"net/netip"
	"sync/atomic"
)

// Snapshot is one immutable version of the registry, as the DNS path reads
// it. A Snapshot is never modified after it is published; a registry change
// publishes a new one that shares everything the change did not touch.
type Snapshot struct {
	// Revision is the etcd revision the snapshot reflects.
	Revision int64
	// Stale is set while the snapshot comes from the local copy and etcd has
	// not yet confirmed it.
	Stale bool
	// dataVersion counts the publishes that may have changed what is
	// served (events, full loads); see DataVersion.
	dataVersion uint64
	// witness is the last put the snapshot applied (see Witness).
	witness Witness

	// nets holds the served orgs by network; names finds an org's network
	// by its name. An event rebuilds its org and so changes nets, but
	// names only when an org comes, goes or moves to another network: one
	// index edited per event, and the one a query reads (OrgOf, by the
	// asker's address) answers with one lookup.
	nets     shardedMap[netKey, *Org]
	names    shardedMap[string, netKey]
	regions  map[string]*Region
	gateways map[string]*Gateway
}

// netKey is the /48 an address lies in: the first six bytes.
type netKey [6]byte

func netKeyOf(a netip.Addr) netKey {
	b := a.As16()
	return netKey(b[:6])
}

func hashNetKey(k netKey) uint32 {
	return uint32(k[4])<<8 | uint32(k[5]) ^ uint32(k[3])<<16 ^ uint32(k[2])<<4
}

func hashAddr(a netip.Addr) uint32 {
	b := a.As16()
	return uint32(b[15]) | uint32(b[14])<<8 | uint32(b[13])<<16 ^ uint32(b[11])<<4 ^ uint32(b[9])
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		names:    newShardedMap[string, netKey](hashString),
		nets:     newShardedMap[netKey, *Org](hashNetKey),
		regions:  map[string]*Region{},
		gateways: map[string]*Gateway{},
	}
}

// DataVersion changes whenever a change may have altered what the snapshot
// serves: a batch of events or a full load. A snapshot that only moved to a
// later revision (a progress notification: etcd changed elsewhere) or was
// confirmed keeps it, so a saver can tell that nothing it saved changed.
func (s *Snapshot) DataVersion() uint64 { return s.dataVersion }

// Org returns the org with that slug, or nil.
func (s *Snapshot) Org(name string) *Org {
	nk, ok := s.names.Get(name)
	if !ok {
		return nil
	}
	if o, _ := s.nets.Get(nk); o != nil && o.Name == name {
		return o
	}
	return nil
}

// claimOf is the claim of a served org, for dating claims at the next
// full load.
func (s *Snapshot) claimOf(name string) (Claim, netip.Prefix, bool) {
	if o := s.Org(name); o != nil {
		return o.Claim, o.Network, true
	}
	return Claim{}, netip.Prefix{}, false
}

// OrgOf returns the org whose network holds a, or nil.
func (s *Snapshot) OrgOf(a netip.Addr) *Org {
	if !a.Is6() || a.Is4In6() {
		return nil
	}
	o, _ := s.nets.Get(netKeyOf(a))
	return o
}

// OrgCount is the number of orgs being served.
func (s *Snapshot) OrgCount() int { return s.nets.Len() }

// RangeOrgs calls fn for each org in no particular order until it returns false.
func (s *Snapshot) RangeOrgs(fn func(*Org) bool) {
	s.nets.Range(func(_ netKey, o *Org) bool { return fn(o) })
}

// Region returns a region added or overridden by a regions/ key.
func (s *Snapshot) Region(code string) *Region { return s.regions[code] }

// Regions returns the regions/ entries, keyed by code. Callers must not modify it.
func (s *Snapshot) Regions() map[string]*Region { return s.regions }

// Gateway returns the WireGuard gateway of a region, or nil.
func (s *Snapshot) Gateway(region string) *Gateway { return s.gateways[region] }

// Org is one organisation as served: its network, apps, machines and peers.
// Only values that passed every rule appear here.
type Org struct {
	Name    string
	Network netip.Prefix
	// Claim dates the org's hold on Network (see dateClaim).
	Claim Claim
	// Serial grows whenever anything in this org changes; it becomes the
	// zone's SOA serial for askers of this org and says nothing about others.
	Serial uint32
	// Gen changes whenever anything in this org changes; caches compare it.
	Gen uint64

	apps      shardedMap[string, *App]
	appNames  []string
	peers     map[string]*Peer
	peerNames []string
	owners    shardedMap[netip.Addr, Owner]
	// addrIdx holds the sorted address index for reverse names, built on
	// first use (reverse.go); a pointer, so that an Org stays copyable.
	addrIdx *atomic.Pointer[addrIndex]
}

// Owner is the machine or WireGuard peer that holds a 6PN address.
//
// Of Machine, only what makes it the holder is current: Org, App, ID, IP
// and Region. The rest (State, metadata, services, ...) may be from an
// earlier version of the same machine: a change that keeps the address,
// app and region (a start, a stop) does not touch the owner index, so one
// event costs no copy of the org's address shards. Read the machine from
// its app (Org.App(...).Machine(id)) for anything else.
type Owner struct {
	Machine *Machine
	Peer    *Peer
}

// Region is the owner's region, or "".
func (w Owner) Region() string {
	switch {
	case w.Machine != nil:
		return w.Machine.Region
	case w.Peer != nil:
		return w.Peer.Region
	}
	return ""
}

// APIAddr is the org's DNS/API address, <network>::3.
func (o *Org) APIAddr() netip.Addr {
	b := o.Network.Addr().As16()
	b[15] = 3
	return netip.AddrFrom16(b)
}

// App returns the app with that name, or nil if it does not exist.
func (o *Org) App(name string) *App {
	a, _ := o.apps.Get(name)
	return a
}

// AppNames lists the org's existing apps, sorted. Callers must not modify it.
func (o *Org) AppNames() []string { return o.appNames }

// Peer returns the WireGuard peer with that name, or nil.
func (o *Org) Peer(name string) *Peer { return o.peers[name] }

// PeerNames lists every peer of the org, sorted. Callers must not modify it.
func (o *Org) PeerNames() []string { return o.peerNames }

// Owner returns the machine or peer of this org holding address a.
func (o *Org) Owner(a netip.Addr) (Owner, bool) { return o.owners.Get(a) }

// App is one app of an org as served.
type App struct {
	Org  string
	Name string
	// Flycast is the app's private proxy address; zero when not allocated.
	Flycast netip.Addr
	// Gen changes whenever anything in this app changes; caches compare it.
	Gen uint64
	// Machines are the app's deployed machines (any state but destroyed,
	// without skip_registration), sorted by id: an immutable chunked list
	// (MachineList), so the next version of the app shares all of it but
	// the chunks a change touched. Iterate with Machines.All().
	Machines MachineList
}

// Machine returns the deployed machine with that id, or nil. Machines is
// sorted by id, so this is a binary search: no per-app index to copy when
// the app changes.
func (a *App) Machine(id string) *Machine {
	m, _ := a.Machines.Get(id)
	return m
}
