package zones

import "github.com/meshdns/meshdns/registry"

// filter picks the machines an AAAA name stands for.
type filter struct {
	by   filterBy
	a, b string // region, group, or metadata key and value
}

type filterBy uint8

const (
	byNone   filterBy = iota // every machine of the app
	byRegion                 // <region>.<app>
	byGroup                  // <group>.process.<app>
	byMeta                   // <value>.<key>.kv._metadata.<app>
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
	}
	return true
}

// scan reports whether the name exists — a deployed machine matches, or
// for the whole app, the app exists at all — and, when count is set, how
// many started machines match. Without count it stops at the first match,
// so a TXT or A question for such a name costs little.
func (f filter) scan(app *registry.App, count bool) (exists bool, started int) {
	exists = f.by == byNone
	for _, m := range app.Machines {
		if !f.match(m) {
			continue
		}
		exists = true
		if !count {
			return true, 0
		}
		if m.Started() {
			started++
		}
	}
	return exists, started
}

// anyMachine reports whether a deployed machine of app satisfies pred.
func anyMachine(app *registry.App, pred func(*registry.Machine, string) bool, arg string) bool {
	for _, m := range app.Machines {
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
