package registry

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// The serving rules: which decoded registry value a snapshot serves, and
// when two served values are the same. The store (state: the watch, full
// loads, local copies) and the reconcile (comparer) both decide with these
// functions and nothing else, so a rule changed here changes both: a rule
// written out twice lets the reconcile miss drift, or report drift that is
// not there and send every host into a full load.

// holderOf is the org that holds a network among the orgs claiming it
// (org → claim revision, see dateClaim): the oldest claim, the smaller name
// on a tie. "" when nobody claims it.
func holderOf(claims map[string]int64) string {
	best, bestRev := "", int64(0)
	for name, rev := range claims {
		if best == "" || claimsBefore(name, rev, best, bestRev) {
			best, bestRev = name, rev
		}
	}
	return best
}

// machinePlaced says why a machine cannot be served by an org whose network
// is network (its address lies outside it), or nil. A misplaced machine is
// an invalid value; a placed one is served while it is deployed.
func machinePlaced(m *Machine, network netip.Prefix) error {
	return CheckAddrIn("ip", m.IP, network)
}

// machineServed reports whether an org of network serves m, with the reason
// when m is invalid there.
func machineServed(m *Machine, network netip.Prefix) (bool, error) {
	if err := machinePlaced(m, network); err != nil {
		return false, err
	}
	return m.Deployed(), nil
}

// appValueUsable says why an app value cannot be used by an org of network
// (a flycast address outside it), or nil. An unusable value is skipped like
// an invalid one: the app then exists only through its machines.
func appValueUsable(v *AppValue, network netip.Prefix) error {
	if !v.Flycast.IsValid() {
		return nil
	}
	return CheckAddrIn("flycast", v.Flycast, network)
}

// appExists: an app is served while it has a usable value or a served
// machine.
func appExists(usableValue bool, servedMachines int) bool {
	return usableValue || servedMachines > 0
}

// peerPlaced says why a peer cannot be served by an org of network, or nil.
func peerPlaced(p *Peer, network netip.Prefix) error {
	return CheckAddrIn("ip", p.IP, network)
}

// The same* functions compare every field, times as instants. Peers,
// gateways and regions compare with == apart from their time, so a field
// added to them is compared without touching these; Machine holds maps and
// a slice and lists its fields (TestSameMachineComparesEveryField guards the
// list).

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

// diffOrg calls differ with every path whose served value differs between
// two versions of an org (either may be nil: not served), until differ
// returns false.
func diffOrg(a, b *Org, differ func(Key) bool) {
	name := ""
	switch {
	case a != nil:
		name = a.Name
	case b != nil:
		name = b.Name
	default:
		return
	}
	if (a == nil) != (b == nil) || a.Network != b.Network {
		if !differ(OrgKey(name)) {
			return
		}
	}
	for _, app := range mergeNames(a.appNamesOrNil(), b.appNamesOrNil()) {
		x, y := a.appOrNil(app), b.appOrNil(app)
		if (x == nil) != (y == nil) || x != nil && x.Flycast != y.Flycast {
			if !differ(AppKey(name, app)) {
				return
			}
		}
		var xm, ym MachineList
		if x != nil {
			xm = x.Machines
		}
		if y != nil {
			ym = y.Machines
		}
		if !diffMachines(name, app, cursorOf(xm), cursorOf(ym), differ) {
			return
		}
	}
	for _, pn := range mergeNames(a.peerNamesOrNil(), b.peerNamesOrNil()) {
		x, y := a.peerOrNil(pn), b.peerOrNil(pn)
		if (x == nil) != (y == nil) || x != nil && !samePeer(x, y) {
			if !differ(PeerKey(name, pn)) {
				return
			}
		}
	}
}

// diffMachines compares two machine lists sorted by id (App.Machines, or
// the comparer's slice), as a merge; it reports false when differ asked to
// stop.
func diffMachines(org, app string, want, have machineCursor, differ func(Key) bool) bool {
	for !want.done() || !have.done() {
		var k Key
		switch {
		case have.done() || !want.done() && want.peek().ID < have.peek().ID:
			k = MachineKey(org, app, want.peek().ID)
			want.next()
		case want.done() || have.peek().ID < want.peek().ID:
			k = MachineKey(org, app, have.peek().ID)
			have.next()
		default:
			same := sameMachine(want.peek(), have.peek())
			k = MachineKey(org, app, want.peek().ID)
			want.next()
			have.next()
			if same {
				continue
			}
		}
		if !differ(k) {
			return false
		}
	}
	return true
}

// mergeNames is the sorted union of two sorted lists.
func mergeNames(a, b []string) []string {
	if slices.Equal(a, b) {
		return a
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func (o *Org) appNamesOrNil() []string {
	if o == nil {
		return nil
	}
	return o.AppNames()
}

func (o *Org) peerNamesOrNil() []string {
	if o == nil {
		return nil
	}
	return o.PeerNames()
}

func (o *Org) appOrNil(name string) *App {
	if o == nil {
		return nil
	}
	return o.App(name)
}

func (o *Org) peerOrNil(name string) *Peer {
	if o == nil {
		return nil
	}
	return o.Peer(name)
}

// sameServed reports whether two versions of an org serve the same data.
func sameServed(a, b *Org) bool {
	same := true
	diffOrg(a, b, func(Key) bool { same = false; return false })
	return same
}
