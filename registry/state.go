package registry

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Event is one change of a registry key, as etcd reports it. A full load is
// a list of puts.
type Event struct {
	Key            string
	Value          []byte
	Delete         bool
	CreateRevision int64
	ModRevision    int64
	// Version is the key's version (1 when it was created, +1 per write);
	// 0 when not known. Org claims need it (see dateClaim).
	Version int64
}

// state is the mutable, writer-side model of the registry: what every key
// currently says, decoded. Only the goroutine that applies etcd events
// touches it; readers see the Snapshots it publishes.
type state struct {
	prefix   string
	orgs     map[string]*orgState
	regions  map[string]*Region
	gateways map[string]*Gateway
	// claims maps each /48 to the orgs whose value names it, with the
	// revisions of their claims (Claim.Rev): the oldest claim wins, later
	// ones are rejected.
	claims map[netKey]map[string]int64
	// During a full load: the claims of the snapshot being replaced
	// (prevClaim, nil when none), and the orgs whose claim is only an
	// upper bound (estimated), for Load.ResolveClaims.
	prevClaim func(org string) (Claim, netip.Prefix, bool)
	estimated map[string]bool
	// invalid maps an etcd key to why its value is not served.
	invalid map[string]string

	dirty       map[string]*orgDirty
	globalDirty bool
	// spareDirty and spareIDs are emptied orgDirty values and id sets
	// from earlier batches, reused so that an event allocates none.
	spareDirty []*orgDirty
	spareIDs   []map[string]bool
	// newInvalid collects keys that became invalid during this batch, for logging.
	newInvalid []string
	// serialFloor is the snapshot a full load replaces: serials keep growing
	// across the reload.
	serialFloor *Snapshot
	// witness is the put with the highest mod revision applied (see
	// Witness); witnessValue is its value until publish hashes it.
	witness        Witness
	witnessValue   []byte
	witnessPending bool
}

type orgState struct {
	value *OrgValue
	claim Claim // dates its hold on value.Network
	apps  map[string]*appState
	peers map[string]*Peer
}

type appState struct {
	value    *AppValue
	machines map[string]*Machine
}

type orgDirty struct {
	all   bool // the org itself changed: rebuild every app and peer
	peers bool
	// apps maps each changed app to the ids of its changed machines
	// (empty when only the app value changed).
	apps map[string]map[string]bool
}

func newState(prefix string) *state {
	return &state{
		prefix:   prefix,
		orgs:     map[string]*orgState{},
		regions:  map[string]*Region{},
		gateways: map[string]*Gateway{},
		claims:   map[netKey]map[string]int64{},
		invalid:  map[string]string{},
		dirty:    map[string]*orgDirty{},
	}
}

func (st *state) org(name string) *orgState {
	o := st.orgs[name]
	if o == nil {
		o = &orgState{apps: map[string]*appState{}, peers: map[string]*Peer{}}
		st.orgs[name] = o
	}
	return o
}

// markApp records a change to an app: its value (id "") or one machine.
func (st *state) markApp(org, app, id string) {
	d := st.markOrg(org)
	ids := d.apps[app]
	if ids == nil {
		if n := len(st.spareIDs); n > 0 {
			ids, st.spareIDs = st.spareIDs[n-1], st.spareIDs[:n-1]
		} else {
			ids = map[string]bool{}
		}
		d.apps[app] = ids
	}
	if id != "" {
		ids[id] = true
	}
}

func (st *state) markOrg(org string) *orgDirty {
	d := st.dirty[org]
	if d == nil {
		if n := len(st.spareDirty); n > 0 {
			d, st.spareDirty = st.spareDirty[n-1], st.spareDirty[:n-1]
		} else {
			d = &orgDirty{apps: map[string]map[string]bool{}}
		}
		st.dirty[org] = d
	}
	return d
}

// Spares kept for reuse: enough for the batches of a watch, and only small
// ones, so a full load's big sets are not held on to.
const (
	maxSpares    = 8
	maxSpareSize = 64
)

// clearDirty empties the record of changes after a publish, keeping a few
// small parts of it for the next batch.
func (st *state) clearDirty() {
	for _, d := range st.dirty {
		for _, ids := range d.apps {
			if len(ids) <= maxSpareSize && len(st.spareIDs) < maxSpares {
				clear(ids)
				st.spareIDs = append(st.spareIDs, ids)
			}
		}
		if len(d.apps) <= maxSpareSize && len(st.spareDirty) < maxSpares {
			clear(d.apps)
			d.all, d.peers = false, false
			st.spareDirty = append(st.spareDirty, d)
		}
	}
	clear(st.dirty)
}

// validAgain forgets that key k held a value not served. It builds the
// key's path only when some key is invalid: once per event otherwise.
func (st *state) validAgain(k Key) {
	if len(st.invalid) > 0 {
		delete(st.invalid, st.prefix+k.Path())
	}
}

func (st *state) setInvalid(key, reason string) {
	if old, ok := st.invalid[key]; !ok || old != reason {
		st.newInvalid = append(st.newInvalid, key)
	}
	st.invalid[key] = reason
}

// apply records one event. A value that does not parse or breaks a rule is
// treated as absent (the key's previous value is not served either, since
// etcd no longer holds it) and recorded in invalid.
func (st *state) apply(ev Event) {
	if !ev.Delete && ev.ModRevision > st.witness.ModRevision {
		st.witness = Witness{Key: ev.Key, ModRevision: ev.ModRevision}
		st.witnessValue, st.witnessPending = ev.Value, true
	}
	delete(st.invalid, ev.Key)
	k, err := ParseKey(st.prefix, ev.Key)
	if err != nil {
		if !ev.Delete {
			st.setInvalid(ev.Key, err.Error())
		}
		return
	}
	var v any
	if !ev.Delete {
		if v, err = Decode(k, ev.Value); err != nil {
			st.setInvalid(ev.Key, err.Error())
		}
	}
	switch k.Kind {
	case KindOrg:
		o := st.org(k.Name)
		// The claim known before this value: the previous version's (the
		// watch), or the replaced snapshot's (a full load).
		var prev *Claim
		var prevNet netip.Prefix
		if o.value != nil {
			c := o.claim
			prev, prevNet = &c, o.value.Network
		} else if st.prevClaim != nil {
			if c, n, ok := st.prevClaim(k.Name); ok {
				prev, prevNet = &c, n
			}
		}
		st.unclaim(k.Name, o)
		o.value, _ = v.(*OrgValue)
		delete(st.estimated, k.Name)
		if o.value != nil {
			c, estimated := dateClaim(prev, prevNet, ev, o.value.Network)
			o.claim = c
			if estimated && st.estimated != nil {
				st.estimated[k.Name] = true
			}
			nk := netKeyOf(o.value.Network.Addr())
			before := st.holder(nk)
			if st.claims[nk] == nil {
				st.claims[nk] = map[string]int64{}
			}
			st.claims[nk][k.Name] = c.Rev
			st.markClaimants(nk, before)
		}
		st.markOrg(k.Name).all = true
		st.globalDirty = true
	case KindApp:
		a := st.app(k.Org, k.App)
		a.value, _ = v.(*AppValue)
		st.forgetApp(k.Org, k.App, a)
		st.markApp(k.Org, k.App, "")
	case KindMachine:
		a := st.app(k.Org, k.App)
		if m, _ := v.(*Machine); m != nil {
			a.machines[k.Name] = m
		} else {
			delete(a.machines, k.Name)
		}
		st.forgetApp(k.Org, k.App, a)
		st.markApp(k.Org, k.App, k.Name)
	case KindPeer:
		o := st.org(k.Org)
		if p, _ := v.(*Peer); p != nil {
			o.peers[k.Name] = p
		} else {
			delete(o.peers, k.Name)
		}
		st.markOrg(k.Org).peers = true
	case KindGateway:
		if g, _ := v.(*Gateway); g != nil {
			st.gateways[k.Name] = g
		} else {
			delete(st.gateways, k.Name)
		}
		st.globalDirty = true
	case KindRegion:
		if r, _ := v.(*Region); r != nil {
			st.regions[k.Name] = r
		} else {
			delete(st.regions, k.Name)
		}
		st.globalDirty = true
	}
}

func (st *state) app(org, app string) *appState {
	o := st.org(org)
	a := o.apps[app]
	if a == nil {
		a = &appState{machines: map[string]*Machine{}}
		o.apps[app] = a
	}
	return a
}

// forgetApp drops the state of an app that has neither a value nor machines
// left, so the work of a later update never grows with apps that are gone.
func (st *state) forgetApp(org, app string, a *appState) {
	if a.value == nil && len(a.machines) == 0 {
		delete(st.orgs[org].apps, app)
	}
}

// unclaim drops the org's claim on its current network, so whoever is next in
// line for that /48 gets rebuilt.
func (st *state) unclaim(name string, o *orgState) {
	if o.value == nil {
		return
	}
	nk := netKeyOf(o.value.Network.Addr())
	before := st.holder(nk)
	delete(st.claims[nk], name)
	if len(st.claims[nk]) == 0 {
		delete(st.claims, nk)
	}
	st.markClaimants(nk, before)
}

// markClaimants marks the orgs claiming nk for a rebuild if a claim change
// moved the network to another holder: the old holder stops being served,
// the new one starts, and the others' reasons name the new holder. A claim
// that changes no holder touches no other org, so one org's writes never
// rebuild (nor bump the serial of) another.
func (st *state) markClaimants(nk netKey, before string) {
	if st.holder(nk) == before {
		return
	}
	if before != "" {
		st.markOrg(before).all = true
	}
	for name := range st.claims[nk] {
		st.markOrg(name).all = true
	}
	st.globalDirty = true
}

// holder is the org that owns a /48: the one that claimed it first.
func (st *state) holder(nk netKey) string { return holderOf(st.claims[nk]) }

// publish builds the next Snapshot from old and the dirty marks, touching
// only what changed, and clears the marks.
func (st *state) publish(old *Snapshot, rev int64, gen *uint64, now time.Time) *Snapshot {
	next := *old
	next.Revision = rev
	next.Stale = false
	if st.witnessPending {
		st.witness.Hash = hashValue(st.witnessValue)
		st.witnessValue, st.witnessPending = nil, false
	}
	next.witness = st.witness
	if len(st.dirty) > 0 {
		names, nets := old.names.edit(), old.nets.edit()
		for name, d := range st.dirty {
			prev := old.Org(name)
			o := st.buildOrg(name, prev, d, gen, now)
			if prev != nil && (o == nil || o.Network != prev.Network) {
				// Its old network: unless another org took it in this batch.
				pk := netKeyOf(prev.Network.Addr())
				if cur, ok := nets.m.Get(pk); ok && cur == prev {
					nets.Delete(pk)
				}
			}
			if o == nil {
				names.Delete(name)
				continue
			}
			nk := netKeyOf(o.Network.Addr())
			nets.Set(nk, o)
			if prev == nil || prev.Network != o.Network {
				names.Set(name, nk)
			}
		}
		next.names, next.nets = names.Done(), nets.Done()
	}
	if st.globalDirty {
		next.regions = make(map[string]*Region, len(st.regions))
		for k, v := range st.regions {
			next.regions[k] = v
		}
		next.gateways = make(map[string]*Gateway, len(st.gateways))
		for k, v := range st.gateways {
			next.gateways[k] = v
		}
	}
	// Forget orgs that hold nothing any more; only changed orgs can have
	// become empty.
	for name := range st.dirty {
		if o := st.orgs[name]; o != nil && o.value == nil && len(o.apps) == 0 && len(o.peers) == 0 {
			delete(st.orgs, name)
		}
	}
	st.clearDirty()
	st.globalDirty = false
	return &next
}

// buildOrg makes the new view of one org, or nil if the org is not served
// (no valid value, or its network is held by an older org). prev is the
// org's view in the snapshot being replaced; d says what changed since.
func (st *state) buildOrg(name string, prev *Org, d *orgDirty, gen *uint64, now time.Time) *Org {
	os := st.orgs[name]
	if !st.orgServed(name, os) {
		return nil
	}
	var b orgBuilder
	st.startOrg(&b, name, os, prev, gen, now)
	if d.all || b.prev == nil {
		b.rebuildAllApps()
	} else {
		for appName, ids := range d.apps {
			b.rebuildApp(appName, ids)
		}
	}
	if d.all || d.peers || b.prev == nil {
		b.rebuildPeers()
	}
	return b.done()
}

// orgServed reports whether the org is served: it has a valid value and
// holds its network (holderOf). An org that is not served has its keys
// recorded as waiting for it.
func (st *state) orgServed(name string, os *orgState) bool {
	if os != nil && os.value != nil {
		holder := st.holder(netKeyOf(os.value.Network.Addr()))
		if holder == name {
			// It may have been refused before (its network held by another org).
			st.validAgain(OrgKey(name))
			return true
		}
		st.setInvalid(st.prefix+OrgKey(name).Path(),
			"network "+os.value.Network.String()+" already belongs to org "+holder)
	}
	st.markOutside(name, os)
	return false
}

// orgBuilder makes the next view of one served org: it starts from the
// previous view (sharing every app and address it does not touch), rebuilds
// the apps and peers that changed, and keeps the address index (owners) in
// step, touching only the addresses of what changed.
type orgBuilder struct {
	st   *state
	name string
	os   *orgState
	// prev is the previous view to patch, nil to build from scratch (new
	// org, new network, full load).
	prev *Org
	// was is the view the serial must grow from (prev, or the replaced
	// snapshot's org during a full load, even across a network change).
	was           *Org
	gen           *uint64
	o             *Org
	apps          mapEditor[string, *App]
	owners        mapEditor[netip.Addr, Owner]
	appSetChanged bool
}

// startOrg sets b up to build the org's next view.
func (st *state) startOrg(b *orgBuilder, name string, os *orgState, prev *Org, gen *uint64, now time.Time) {
	network := os.value.Network
	*b = orgBuilder{st: st, name: name, os: os, prev: prev, was: prev, gen: gen}
	if b.was == nil && st.serialFloor != nil {
		b.was = st.serialFloor.Org(name)
	}
	if prev != nil && prev.Network != network {
		b.prev = nil // every address moves: start from scratch
	}
	*gen++
	o := &Org{Name: name, Network: network, Claim: os.claim, Gen: *gen, Serial: uint32(now.Unix())}
	o.addrIdx = new(atomic.Pointer[addrIndex])
	if b.was != nil && b.was.Serial >= o.Serial {
		o.Serial = b.was.Serial + 1
	}
	if b.prev != nil {
		o.apps, o.appNames, o.peers, o.peerNames, o.owners = b.prev.apps, b.prev.appNames, b.prev.peers, b.prev.peerNames, b.prev.owners
	} else {
		o.apps = newShardedMap[string, *App](hashString)
		o.owners = newShardedMap[netip.Addr, Owner](hashAddr)
		o.peers = map[string]*Peer{}
	}
	b.o, b.apps, b.owners = o, *o.apps.edit(), *o.owners.edit()
}

// rebuildAllApps rebuilds every app the org has now or had before.
func (b *orgBuilder) rebuildAllApps() {
	for appName := range b.os.apps {
		b.rebuildApp(appName, nil)
	}
	if b.prev != nil {
		b.prev.apps.Range(func(appName string, _ *App) bool {
			if b.os.apps[appName] == nil {
				b.rebuildApp(appName, nil)
			}
			return true
		})
	}
}

// rebuildApp makes the new view of one app; ids are the machines that
// changed, or nil when every machine must be looked at again.
func (b *orgBuilder) rebuildApp(appName string, ids map[string]bool) {
	var old *App
	if b.prev != nil {
		old, _ = b.prev.apps.Get(appName)
	}
	a := b.st.buildApp(b.name, appName, b.os.apps[appName], b.o.Network, b.gen, old, ids)
	b.dropOwners(old, a, ids)
	switch {
	case a == nil && old != nil:
		b.apps.Delete(appName)
		b.appSetChanged = true
	case a == nil:
	default:
		if old == nil {
			b.appSetChanged = true
		}
		b.apps.Set(appName, a)
		b.setOwners(old, a, ids)
	}
}

// dropOwners removes the addresses of old's machines that a (nil: the app
// is gone) no longer serves as the same *Machine. Only changed machines
// (ids; all when nil) are touched: rewriting the owner of every machine of
// the app would copy most shards of the org's owner map, making each event
// cost in proportion to the org instead of the change.
func (b *orgBuilder) dropOwners(old, a *App, ids map[string]bool) {
	if old == nil {
		return
	}
	if ids == nil {
		for _, m := range old.Machines.All() {
			b.dropOwner(a, m)
		}
		return
	}
	for id := range ids {
		if m := old.Machine(id); m != nil {
			b.dropOwner(a, m)
		}
	}
}

func (b *orgBuilder) dropOwner(a *App, m *Machine) {
	if a != nil {
		if n := a.Machine(m.ID); n != nil && sameHolder(n, m) {
			return
		}
	}
	// The entry may hold an older version of m (see Owner).
	if cur, ok := b.owners.m.Get(m.IP); ok && cur.Machine != nil && cur.Machine.ID == m.ID && cur.Machine.App == m.App {
		b.owners.Delete(m.IP)
	}
}

// sameHolder reports whether x and y, two versions of one machine, are the
// same to the owner index: the same address, app, id and region (see Owner).
func sameHolder(x, y *Machine) bool {
	return x == y || (x.IP == y.IP && x.ID == y.ID && x.App == y.App && x.Region == y.Region)
}

// setOwners records the addresses of a's new or changed machines.
func (b *orgBuilder) setOwners(old, a *App, ids map[string]bool) {
	if ids == nil || old == nil {
		for _, m := range a.Machines.All() {
			b.setOwner(old, m)
		}
		return
	}
	for id := range ids {
		if m := a.Machine(id); m != nil {
			b.setOwner(old, m)
		}
	}
}

func (b *orgBuilder) setOwner(old *App, m *Machine) {
	if old != nil {
		if p := old.Machine(m.ID); p != nil && sameHolder(p, m) {
			return
		}
	}
	b.owners.Set(m.IP, Owner{Machine: m})
}

// rebuildPeers makes the org's peers anew from its state, validating each
// (peerPlaced).
func (b *orgBuilder) rebuildPeers() {
	st, o := b.st, b.o
	for _, p := range o.peers {
		if cur, ok := b.owners.m.Get(p.IP); ok && cur.Peer == p {
			b.owners.Delete(p.IP)
		}
	}
	o.peers = make(map[string]*Peer, len(b.os.peers))
	o.peerNames = make([]string, 0, len(b.os.peers))
	for pn, p := range b.os.peers {
		if err := peerPlaced(p, o.Network); err != nil {
			st.setInvalid(st.prefix+PeerKey(b.name, pn).Path(), err.Error())
			continue
		}
		st.validAgain(PeerKey(b.name, pn))
		o.peers[pn] = p
		o.peerNames = append(o.peerNames, pn)
		b.owners.Set(p.IP, Owner{Peer: p})
	}
	slices.Sort(o.peerNames)
}

// done finishes the org: its maps, its sorted app names when the set of
// apps changed, and its serial.
func (b *orgBuilder) done() *Org {
	o := b.o
	o.apps, o.owners = b.apps.Done(), b.owners.Done()
	if b.appSetChanged || b.prev == nil {
		o.appNames = make([]string, 0, o.apps.Len())
		o.apps.Range(func(n string, _ *App) bool {
			o.appNames = append(o.appNames, n)
			return true
		})
		slices.Sort(o.appNames)
	}
	// A full load rebuilds every org; one that serves exactly what it
	// served before keeps its serial, so a reload (forced by other orgs'
	// writes compacting etcd) reveals nothing and moves nothing.
	if b.prev == nil && b.was != nil && b.st.serialFloor != nil && sameServed(b.was, o) {
		o.Serial = b.was.Serial
	}
	return o
}

// buildApp makes the new view of one app, or nil if the app does not exist:
// no valid apps/ key and no deployed machine. With old and the set of
// changed machine ids it patches old's sorted machine list, copying only
// the chunks the change touches (MachineList) — work in proportion to the
// change, not to the app; with ids nil it looks at every machine.
func (st *state) buildApp(org, name string, as *appState, network netip.Prefix, gen *uint64, old *App, ids map[string]bool) *App {
	if as == nil {
		return nil
	}
	a := &App{Org: org, Name: name}
	// An app value that breaks a rule is skipped like any other value: the
	// app then exists only through its machines.
	value := as.value
	if value != nil {
		if err := appValueUsable(value, network); err != nil {
			st.setInvalid(st.prefix+AppKey(org, name).Path(), err.Error())
			value = nil
		} else {
			st.validAgain(AppKey(org, name))
			a.Flycast = value.Flycast
		}
	}
	// served validates one machine, keeping the skip list current.
	served := func(id string, m *Machine) bool {
		ok, err := machineServed(m, network)
		if err != nil {
			st.setInvalid(st.prefix+MachineKey(org, name, id).Path(), err.Error())
			return false
		}
		st.validAgain(MachineKey(org, name, id))
		return ok
	}
	if old != nil && ids != nil {
		// Copies only the chunks the changed ids fall in (and the chunk
		// index): the rest of the list is shared with old.
		e := editMachines(old.Machines)
		for id := range ids {
			if m := as.machines[id]; m != nil && served(id, m) {
				e.Set(m)
			} else {
				e.Delete(id)
			}
		}
		a.Machines = e.Done()
	} else {
		ms := make([]*Machine, 0, len(as.machines))
		for id, m := range as.machines {
			if served(id, m) {
				ms = append(ms, m)
			}
		}
		slices.SortFunc(ms, compareMachines)
		a.Machines = machineListOfSorted(ms)
	}
	if !appExists(value != nil, a.Machines.Len()) {
		return nil
	}
	*gen++
	a.Gen = *gen
	return a
}

// markOutside records every machine and peer of an org that is not served
// because the org itself is not: they wait for their org.
func (st *state) markOutside(org string, os *orgState) {
	if os == nil {
		return
	}
	reason := "org " + org + " is not registered or not served"
	for appName, as := range os.apps {
		if as.value != nil {
			st.setInvalid(st.prefix+AppKey(org, appName).Path(), reason)
		}
		for id := range as.machines {
			st.setInvalid(st.prefix+MachineKey(org, appName, id).Path(), reason)
		}
	}
	for pn := range os.peers {
		st.setInvalid(st.prefix+PeerKey(org, pn).Path(), reason)
	}
}
