package registry

import (
	"net/netip"
)

// Who holds a /48 that several orgs name: the org that named it first. An
// org's claim on its network is dated by the etcd revision at which that
// network was first written for the org (and kept since), not by when the
// org's key was created: otherwise an old org whose key is rewritten onto a
// younger org's network (by any program writing etcd) would take it over,
// and with it every asker of that network.
//
// The watch sees every write, so it dates claims exactly. A full load sees
// only current values: it keeps the claims of the snapshot it replaces where
// the key was not rewritten in between (or rewritten once, keeping its
// network), dates a key never rewritten by its create revision, and
// otherwise takes the key's mod revision — an upper bound, later than the
// truth and never earlier, so a rewrite onto another org's network never
// predates that org. Bounds on a network that several orgs claim are then
// made exact from etcd's history (walkClaim) where etcd still has it. The
// reconcile dates claims with the same function, the compared snapshot's
// claims as the previous ones, so it agrees with the snapshot it checks.

// Claim dates an org's hold on its current network.
type Claim struct {
	// Rev is the etcd revision at which the network was first written for
	// the org (an upper bound of it, after a full load that could not see
	// the key's history). The lowest Rev holds a network.
	Rev int64 `json:"rev"`
	// CreateRevision, ModRevision and Version are the org key's, as last
	// seen, so a later full load can tell whether the key was rewritten.
	CreateRevision int64 `json:"create_revision"`
	ModRevision    int64 `json:"mod_revision"`
	Version        int64 `json:"version"`
}

// dateClaim dates the claim on network of an org key whose current value
// (in ev) names it. prev is what was known of the org's claim before (its
// network prevNet), or nil. It returns the claim, and estimated when Rev is
// only an upper bound, which only a full load (prev from an older snapshot,
// or nil) can give: the watch hands over the claim at the key's previous
// version, or nil when that version was absent or invalid, and then the
// key's mod revision is exact.
func dateClaim(prev *Claim, prevNet netip.Prefix, ev Event, network netip.Prefix) (c Claim, estimated bool) {
	c = Claim{CreateRevision: ev.CreateRevision, ModRevision: ev.ModRevision, Version: ev.Version}
	sameKey := prev != nil && prev.CreateRevision == ev.CreateRevision && prev.Version > 0
	switch {
	case ev.ModRevision == ev.CreateRevision:
		// Never rewritten: the network was written with the key.
		c.Rev = ev.CreateRevision
	case sameKey && prevNet == network && (ev.Version == prev.Version || ev.Version == prev.Version+1) && prev.Rev <= ev.ModRevision:
		// Unchanged, or one write since that kept the network.
		c.Rev = prev.Rev
	case sameKey && ev.Version == prev.Version+1:
		// One write since, which changed the network.
		c.Rev = ev.ModRevision
	default:
		c.Rev, estimated = ev.ModRevision, true
	}
	return c, estimated
}

// claimsBefore orders two claims on one network: the older holds it, the
// org name breaking a tie (two orgs written in one transaction).
func claimsBefore(org string, rev int64, otherOrg string, otherRev int64) bool {
	return rev < otherRev || rev == otherRev && org < otherOrg
}

// maxClaimWalk bounds the versions of one org key walkClaim reads.
const maxClaimWalk = 1000

// walkClaim makes an estimated claim exact from etcd's history: it reads the
// org key's earlier versions (getAt reads a key as it was at a revision) back
// to the first one that named the same network without a break. Where the
// history was compacted, or after maxClaimWalk versions, it returns the
// earliest revision it could confirm, still an upper bound.
func walkClaim(prefix, org string, c Claim, network netip.Prefix, getAt func(key string, rev int64) (Event, bool, error)) int64 {
	k := OrgKey(org)
	key := prefix + k.Path()
	rev := c.ModRevision
	for range maxClaimWalk {
		if rev <= c.CreateRevision {
			return c.CreateRevision
		}
		ev, ok, err := getAt(key, rev-1)
		if err != nil || !ok || ev.CreateRevision != c.CreateRevision {
			return rev
		}
		v, err := Decode(k, ev.Value)
		if err != nil || v.(*OrgValue).Network != network {
			return rev
		}
		rev = ev.ModRevision
	}
	return rev
}
