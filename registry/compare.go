package registry

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
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
	value    bool       // a valid apps/ value (flycast inside the network)
	flycast  netip.Addr // its flycast
	deployed bool       // at least one served machine
	visited  bool       // its machines were compared
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
		best := claims[0]
		for _, cl := range claims[1:] {
			if claimsBefore(cl.org, cl.rev, best.org, best.rev) {
				best = cl
			}
		}
		for _, cl := range claims {
			if cl != best {
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
		if av, _ := v.(*AppValue); av != nil && (!av.Flycast.IsValid() || o.value.Network.Contains(av.Flycast)) {
			a.value, a.flycast = true, av.Flycast
		}
	case KindMachine:
		if !c.curOpen {
			c.cur, c.curOpen, c.machines = appRef{k.Org, k.App}, true, c.machines[:0]
		}
		if m, _ := v.(*Machine); m != nil && CheckAddrIn("ip", m.IP, o.value.Network) == nil && m.Deployed() {
			c.machines = append(c.machines, m)
		}
	case KindPeer:
		p, _ := v.(*Peer)
		if p != nil && CheckAddrIn("ip", p.IP, o.value.Network) != nil {
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
	a.visited, a.deployed = true, len(c.machines) > 0
	var have []*Machine
	if so := c.snap.Org(c.cur.org); so != nil {
		if sa := so.App(c.cur.app); sa != nil {
			have = sa.Machines
		}
	}
	want := c.machines
	for len(want) > 0 || len(have) > 0 {
		switch {
		case len(have) == 0 || len(want) > 0 && want[0].ID < have[0].ID:
			c.differ(MachineKey(c.cur.org, c.cur.app, want[0].ID))
			want = want[1:]
		case len(want) == 0 || have[0].ID < want[0].ID:
			c.differ(MachineKey(c.cur.org, c.cur.app, have[0].ID))
			have = have[1:]
		default:
			if !sameMachine(want[0], have[0]) {
				c.differ(MachineKey(c.cur.org, c.cur.app, want[0].ID))
			}
			want, have = want[1:], have[1:]
		}
	}
	clear(c.machines) // drop the decoded machines now
	c.machines = c.machines[:0]
}

// finish compares what only the totals show — apps, and what the snapshot
// serves that no key in etcd does — and returns the differing paths, sorted.
func (c *comparer) finish() []string {
	c.closeApp()
	for ref, a := range c.apps {
		exists := a.value || a.deployed
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
				for _, m := range so.App(an).Machines {
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

// The same* functions compare every field, times as instants (as
// reflect.DeepEqual on decoded values would see them). Peers, gateways and
// regions compare with == apart from their time, so a field added to them
// is compared without touching these; Machine holds a map and lists its
// fields.

func sameMachine(a, b *Machine) bool {
	return a.Org == b.Org && a.App == b.App && a.ID == b.ID && a.Region == b.Region && a.IP == b.IP &&
		a.State == b.State && a.ProcessGroup == b.ProcessGroup && a.SkipRegistration == b.SkipRegistration &&
		maps.Equal(a.Metadata, b.Metadata) && a.UpdatedAt.Equal(b.UpdatedAt) &&
		maps.Equal(a.Checks, b.Checks) && slices.Equal(a.Services, b.Services)
}

func samePeer(a, b *Peer) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	return x == y && a.UpdatedAt.Equal(b.UpdatedAt)
}

func sameGateway(a, b *Gateway) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	return x == y && a.UpdatedAt.Equal(b.UpdatedAt)
}

func sameRegion(a, b *Region) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	return x == y && a.UpdatedAt.Equal(b.UpdatedAt)
}

// diffEvents is the comparer run over a list of events (tests, and the
// shape of Reconcile without etcd): orgs first, then everything in key order.
func diffEvents(prefix string, snap *Snapshot, evs []Event, getAt func(key string, rev int64) (Event, bool, error)) []string {
	c := newComparer(prefix, snap)
	c.getAt = getAt
	sorted := slices.SortedFunc(slices.Values(evs), func(a, b Event) int { return strings.Compare(a.Key, b.Key) })
	for _, ev := range sorted {
		if strings.HasPrefix(ev.Key, prefix+"orgs/") {
			c.org(ev)
		}
	}
	c.orgsDone()
	for _, ev := range sorted {
		c.add(ev)
	}
	return c.finish()
}
