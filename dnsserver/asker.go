package dnsserver

import (
	"net/netip"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// identify works out who is asking from the source address: the org whose
// network holds it, and the machine or peer that owns it. A source in no
// org belongs to defaultOrg when one is set; otherwise ok is false and the
// query is refused.
func identify(snap *registry.Snapshot, src netip.Addr, defaultOrg string) (zones.Asker, bool) {
	src = src.Unmap()
	a := zones.Asker{Addr: src, Org: snap.OrgOf(src)}
	if a.Org != nil {
		a.Owner, _ = a.Org.Owner(src)
		return a, true
	}
	if defaultOrg != "" {
		if a.Org = snap.Org(defaultOrg); a.Org != nil {
			return a, true
		}
	}
	return a, false
}
