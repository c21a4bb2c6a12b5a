package dnsserver

import (
	"net/netip"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// identify works out who is asking from the source address: the org whose
// network holds it, and the machine or peer that owns it. A source in no
// org belongs to defaultOrg when one is set. ok is false — the query is
// refused — when the asker has no org, or when the query was sent to an
// org's own DNS address (<network>::3) by an asker of another org.
func identify(snap *registry.Snapshot, src, dst netip.Addr, defaultOrg string) (a zones.Asker, ok bool) {
	src = src.Unmap()
	a = zones.Asker{Addr: src, Org: snap.OrgOf(src)}
	if a.Org != nil {
		a.Owner, _ = a.Org.Owner(src)
	} else if defaultOrg != "" {
		a.Org = snap.Org(defaultOrg)
	}
	if a.Org == nil {
		return a, false
	}
	if dst.IsValid() {
		if d := snap.OrgOf(dst); d != nil && d != a.Org && dst == d.APIAddr() {
			return a, false
		}
	}
	return a, true
}
