package zones

import (
	"bytes"

	"github.com/miekg/dns"
)

// Scope says what the answer to a name depends on, for a cache of answers
// (the server's answer cache) to know which registry change makes it
// stale. zones owns the grammar, so it also says this, rather than the
// cache reading names on its own.
type Scope struct {
	// InZone is set for names in internal., flycast. and the reverse
	// zone (as InZone).
	InZone bool
	// PerAsker is set for names whose answer describes the asker
	// (_whoami): never cached.
	PerAsker bool
	// App is the app label a positive answer for the name depends on
	// alone (web in x.vm.web.internal., web.flycast.): a slice of the
	// name. Empty when answers depend on the whole org (the apex,
	// _apps, _instances, _peer..., reverse names: an address may move
	// between apps and peers).
	App []byte
}

var (
	wireInternal = []byte("internal")
	wireFlycast  = []byte("flycast")
	wireWhoami   = []byte("\x07_whoami\x08internal\x00")
	// wireReverse is the reverse zone's apex as a wire name.
	wireReverse = []byte("\x01a\x01a\x01d\x01f\x03ip6\x04arpa\x00")
)

// WireScope is the Scope of a name in wire format, lowercased, without
// compression (as a parsed question is). It allocates nothing.
func WireScope(name []byte) Scope {
	// A reverse name ends with the reverse apex at a label boundary: one
	// walk over the labels finds that boundary and the last two labels.
	revStart := len(name) - len(wireReverse)
	rev := revStart >= 0 && bytes.Equal(name[revStart:], wireReverse)
	var prev, last []byte
	for off := 0; off < len(name) && name[off] != 0; {
		if rev && off == revStart {
			return Scope{InZone: true}
		}
		l := int(name[off])
		if off+1+l > len(name) {
			return Scope{}
		}
		prev, last = last, name[off+1:off+1+l]
		off += 1 + l
	}
	sc := Scope{InZone: true}
	switch {
	case bytes.Equal(last, wireInternal):
		sc.PerAsker = bytes.Equal(name, wireWhoami)
	case bytes.Equal(last, wireFlycast):
	default:
		return Scope{}
	}
	if len(prev) > 0 && prev[0] != '_' {
		sc.App = prev
	}
	return sc
}

// AnswerApp is the app label an answer with answer records (positive)
// to a question of qtype depends on alone, or nil when it depends on the
// whole org: negative answers and SOA answers carry the zone's SOA, whose
// serial is the org's.
func (sc Scope) AnswerApp(qtype uint16, positive bool) []byte {
	if !positive || qtype == dns.TypeSOA {
		return nil
	}
	return sc.App
}

// OrderedForAsker reports whether answers of qtype are ordered for the
// asker (nearest first from Asker.Region, ties by the asker's address):
// AAAA and SRV. A cache of them must key them by asker.
func OrderedForAsker(qtype uint16) bool { return qtype == dns.TypeAAAA || qtype == dns.TypeSRV }
