package registry

import (
	"net/netip"
	"slices"
	"strings"
)

// comparer checks a snapshot against etcd's keys read at the snapshot's
// revision, one page at a time, without building a second store: it works
// out what each key would serve under the same rules as state and compares
// it with what the snapshot serves, so a reconcile of a registry of a
// million machines holds a page and a few bytes per app, not a second
// registry. Its result equals DiffSnapshots(snapshot, what a full load of
// etcd replacing the snapshot would serve) — org claims dated by the same
// dateClaim, the snapshot's claims as the previous ones — except that
// timestamps compare by instant and an empty metadata map equals none.
//
// Use: org for every orgs/ key, then orgsDone, then add for every key in
// key order (orgs/ keys are skipped), then finish.
type comparer struct {
	prefix string
	snap   *Snapshot
	// getAt reads etcd's history, to date claims as a full load would
	// (Load.ResolveClaims); nil when there is none to read.
	getAt func(key string, rev int64) (Event, bool, error)

	orgs   map[string]*cmpOrg // every org etcd serves
	claims map[netKey][]orgClaim
	apps   map[appRef]*cmpApp
	peers  map[string]map[string]bool // org → peers etcd serves
	// regions and gateways etcd serves.
	regions, gateways map[string]bool

	// The app whose machine keys are being read: machines/<org>/<app>/
	// keys are contiguous and sorted by id, like App.Machines.
	cur      appRef
	curOpen  bool
	machines []*Machine // served machines of cur, in id order

	diff []string
}

type cmpOrg struct {
	value     *OrgValue
	claim     Claim
	estimated bool // claim.Rev is only an upper bound
}

type orgClaim struct {
	org string
	rev int64
}

type appRef struct{ org, app string }

type cmpApp struct {
	value   bool       // a valid apps/ value (flycast inside the network)
	flycast netip.Addr // its flycast
	served  int        // served machines
	visited bool       // its machines were compared
}

func newComparer(prefix string, snap *Snapshot) *comparer {
	return &comparer{prefix: prefix, snap: snap, orgs: map[string]*cmpOrg{}, claims: map[netKey][]orgClaim{},
		apps: map[appRef]*cmpApp{}, peers: map[string]map[string]bool{}, regions: map[string]bool{}, gateways: map[string]bool{}}
}

func (c *comparer) differ(k Key) { c.diff = append(c.diff, k.Path()) }

// org records one orgs/ key.
func (c *comparer) org(ev Event) {
	k, err := ParseKey(c.prefix, ev.Key)
	if err != nil || k.Kind != KindOrg {
		return
	}
	v, err := Decode(k, ev.Value)
	if err != nil {
		return
	}
	o := v.(*OrgValue)
	// Dated as a full load replacing the snapshot would date it: the
	// snapshot's claim holds where the key is the one it saw.
	var prev *Claim
	var prevNet netip.Prefix
	if cl, n, ok := c.snap.claimOf(k.Name); ok {
		prev, prevNet = &cl, n
	}
	cl, estimated := dateClaim(prev, prevNet, ev, o.Network)
	c.orgs[k.Name] = &cmpOrg{value: o, claim: cl, estimated: estimated}
	nk := netKeyOf(o.Network.Addr())
	c.claims[nk] = append(c.claims[nk], orgClaim{k.Name, cl.Rev})
}

// orgsDone settles which orgs are served (the oldest claim on a network
// holds it, as in state.holder) and compares them.
func (c *comparer) orgsDone() {
	for _, claims := range c.claims {
		// A full load dates competing claims it could only bound from
		// etcd's history: so does the comparer.
		for i, cl := range claims {
			if o := c.orgs[cl.org]; len(claims) > 1 && o.estimated && c.getAt != nil {
				claims[i].rev = walkClaim(c.prefix, cl.org, o.claim, o.value.Network, c.getAt)
			}
		}
		revs := make(map[string]int64, len(claims))
		for _, cl := range claims {
			revs[cl.org] = cl.rev
		}
		best := holderOf(revs)
		for _, cl := range claims {
			if cl.org != best {
				delete(c.orgs, cl.org)
			}
		}
	}
	c.claims = nil
	for name, o := range c.orgs {
		if so := c.snap.Org(name); so == nil || so.Network != o.value.Network {
			c.differ(OrgKey(name))
		}
	}
	c.snap.RangeOrgs(func(so *Org) bool {
		if c.orgs[so.Name] == nil {
			c.differ(OrgKey(so.Name))
		}
		return true
	})
}

// add compares one key.
func (c *comparer) add(ev Event) {
	k, err := ParseKey(c.prefix, ev.Key)
	if err != nil || k.Kind == KindOrg {
		return
	}
	if k.Kind != KindMachine || k.Org != c.cur.org || k.App != c.cur.app {
		c.closeApp()
	}
	var o *cmpOrg
	if k.Org != "" {
		if o = c.orgs[k.Org]; o == nil {
			return // not served; the snapshot's side is checked in finish
		}
	}
	v, err := Decode(k, ev.Value)
	switch k.Kind {
	case KindApp:
		a := c.app(k.Org, k.App)
		if av, _ := v.(*AppValue); av != nil && appValueUsable(av, o.value.Network) == nil {
			a.value, a.flycast = true, av.Flycast
		}
	case KindMachine:
		if !c.curOpen {
			c.cur, c.curOpen, c.machines = appRef{k.Org, k.App}, true, c.machines[:0]
		}
		if m, _ := v.(*Machine); m != nil {
			if served, _ := machineServed(m, o.value.Network); served {
				c.machines = append(c.machines, m)
			}
		}
	case KindPeer:
		p, _ := v.(*Peer)
		if p != nil && peerPlaced(p, o.value.Network) != nil {
			p = nil
		}
		if p != nil {
			if c.peers[k.Org] == nil {
				c.peers[k.Org] = map[string]bool{}
			}
			c.peers[k.Org][k.Name] = true
		}
		var sp *Peer
		if so := c.snap.Org(k.Org); so != nil {
			sp = so.Peer(k.Name)
		}
		if (p == nil) != (sp == nil) || p != nil && !samePeer(p, sp) {
			c.differ(k)
		}
	case KindGateway:
		g, _ := v.(*Gateway)
		sg := c.snap.Gateway(k.Name)
		if g != nil {
			c.gateways[k.Name] = true
		}
		if (g == nil) != (sg == nil) || g != nil && !sameGateway(g, sg) {
			c.differ(k)
		}
	case KindRegion:
		r, _ := v.(*Region)
		sr := c.snap.Region(k.Name)
		if r != nil {
			c.regions[k.Name] = true
		}
		if (r == nil) != (sr == nil) || r != nil && !sameRegion(r, sr) {
			c.differ(k)
		}
	}
}

func (c *comparer) app(org, app string) *cmpApp {
	ref := appRef{org, app}
	a := c.apps[ref]
	if a == nil {
		a = &cmpApp{}
		c.apps[ref] = a
	}
	return a
}

// closeApp compares the machines of the app just read with the snapshot's:
// both lists are sorted by id, so this is a merge.
func (c *comparer) closeApp() {
	if !c.curOpen {
		return
	}
	c.curOpen = false
	a := c.app(c.cur.org, c.cur.app)
	a.visited, a.served = true, len(c.machines)
	var have MachineList
	if so := c.snap.Org(c.cur.org); so != nil {
		if sa := so.App(c.cur.app); sa != nil {
			have = sa.Machines
		}
	}
	diffMachines(c.cur.org, c.cur.app, cursorOfSlice(c.machines), cursorOf(have), func(k Key) bool { c.differ(k); return true })
	clear(c.machines) // drop the decoded machines now
	c.machines = c.machines[:0]
}

// finish compares what only the totals show — apps, and what the snapshot
// serves that no key in etcd does — and returns the differing paths, sorted.
func (c *comparer) finish() []string {
	c.closeApp()
	for ref, a := range c.apps {
		exists := appExists(a.value, a.served)
		var sa *App
		if so := c.snap.Org(ref.org); so != nil {
			sa = so.App(ref.app)
		}
		if exists != (sa != nil) || exists && sa.Flycast != a.flycast {
			c.differ(AppKey(ref.org, ref.app))
		}
	}
	c.snap.RangeOrgs(func(so *Org) bool {
		served := c.orgs[so.Name] != nil
		for _, an := range so.AppNames() {
			a := c.apps[appRef{so.Name, an}]
			if !served || a == nil {
				c.differ(AppKey(so.Name, an))
			}
			if !served || a == nil || !a.visited {
				// No machine key of this app was read: every machine the
				// snapshot serves for it is one too many.
				for _, m := range so.App(an).Machines.All() {
					c.differ(MachineKey(so.Name, an, m.ID))
				}
			}
		}
		for _, pn := range so.PeerNames() {
			if !served || !c.peers[so.Name][pn] {
				c.differ(PeerKey(so.Name, pn))
			}
		}
		return true
	})
	for code := range c.snap.regions {
		if !c.regions[code] {
			c.differ(RegionKey(code))
		}
	}
	for region := range c.snap.gateways {
		if !c.gateways[region] {
			c.differ(GatewayKey(region))
		}
	}
	slices.Sort(c.diff)
	return slices.Compact(c.diff)
}

// diffEvents is the comparer run over a list of events (tests, and the
// shape of Reconcile without etcd): orgs first, then everything in key order.
func diffEvents(prefix string, snap *Snapshot, evs []Event, getAt func(key string, rev int64) (Event, bool, error)) []string {
	c := newComparer(prefix, snap)
	c.getAt = getAt
	sorted := slices.SortedFunc(slices.Values(evs), func(a, b Event) int { return strings.Compare(a.Key, b.Key) })
	orgs := prefix + Dir(KindOrg)
	for _, ev := range sorted {
		if strings.HasPrefix(ev.Key, orgs) {
			c.org(ev)
		}
	}
	c.orgsDone()
	for _, ev := range sorted {
		c.add(ev)
	}
	return c.finish()
}
