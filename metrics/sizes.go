package metrics

import (
	"sync"
	"weak"

	"github.com/meshdns/meshdns/registry"
)

// Sizes are the numbers of objects a snapshot serves. Machines are the
// deployed ones (destroyed and skip_registration machines are not served).
type Sizes struct {
	Orgs, Apps, Machines, Peers int
}

// Count walks a snapshot: orgs and apps, not machines (each app knows how
// many it has), so a registry of a million machines in a few thousand apps
// takes microseconds to milliseconds.
func Count(s *registry.Snapshot) Sizes {
	var z Sizes
	if s == nil {
		return z
	}
	s.RangeOrgs(func(o *registry.Org) bool {
		z.Orgs++
		names := o.AppNames()
		z.Apps += len(names)
		for _, n := range names {
			if a := o.App(n); a != nil {
				z.Machines += a.Machines.Len()
			}
		}
		z.Peers += len(o.PeerNames())
		return true
	})
	return z
}

// sizeCache counts each snapshot once however often it is scraped. It
// remembers the snapshot weakly, so an old registry is never kept alive
// just because it was the last one counted.
type sizeCache struct {
	mu    sync.Mutex
	snap  weak.Pointer[registry.Snapshot]
	sizes Sizes
}

func (c *sizeCache) get(s *registry.Snapshot) Sizes {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == nil {
		return Sizes{}
	}
	if c.snap.Value() != s {
		c.sizes = Count(s)
		c.snap = weak.Make(s)
	}
	return c.sizes
}
