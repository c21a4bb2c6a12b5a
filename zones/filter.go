package zones

import "github.com/meshdns/meshdns/registry"

// filter picks the machines an AAAA name stands for.
type filter struct {
	by   filterBy
	a, b string // region, group, or metadata key and value
}

type filterBy uint8

const (
	byNone    filterBy = iota // every machine of the app
	byRegion                  // <region>.<app>
	byGroup                   // <group>.process.<app>
	byMeta                    // <value>.<key>.kv._metadata.<app>
	byService                 // _<service>._<protocol>.<app>: a is the service, b the protocol
)

func (f filter) match(m *registry.Machine) bool {
	switch f.by {
	case byRegion:
		return m.Region == f.a
	case byGroup:
		return m.ProcessGroup == f.a
	case byMeta:
		v, ok := m.Metadata[f.a]
		return ok && v == f.b
	case byService:
		_, ok := m.Offers(f.a, f.b)
		return ok
	}
	return true
}

// scan reports whether the name exists — a deployed machine matches, or
// for the whole app, the app exists at all — and, when count is set, how
// many started machines match and how many of those are healthy. Without
// count it stops at the first match, so a TXT or A question for such a
// name costs little.
func (f filter) scan(app *registry.App, count bool) (exists bool, started, healthy int) {
	exists = f.by == byNone
	for _, m := range app.Machines.All() {
		if !f.match(m) {
			continue
		}
		exists = true
		if !count {
			return true, 0, 0
		}
		if m.Started() {
			started++
			if m.Healthy() {
				healthy++
			}
		}
	}
	return exists, started, healthy
}

// hasProtocol reports whether m declares a service over protocol.
func hasProtocol(m *registry.Machine, protocol string) bool {
	for _, s := range m.Services {
		if s.Protocol == protocol {
			return true
		}
	}
	return false
}

// anyMachine reports whether a deployed machine of app satisfies pred.
func anyMachine(app *registry.App, pred func(*registry.Machine, string) bool, arg string) bool {
	for _, m := range app.Machines.All() {
		if pred(m, arg) {
			return true
		}
	}
	return false
}

func hasMetadata(m *registry.Machine, _ string) bool { return len(m.Metadata) > 0 }

func hasMetadataKey(m *registry.Machine, key string) bool {
	_, ok := m.Metadata[key]
	return ok
}
