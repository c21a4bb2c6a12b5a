package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/registry"
)

// The answer cache holds packed replies, built for the lowercased question,
// and serves them by copying the bytes and patching in the query's id,
// flags and the question's exact case. Each UDP worker owns one cache, so
// lookups take no lock and the registry's writers never wait on it.
//
// An entry stays valid while what it was computed from is unchanged:
//   - a positive answer under an app (<...>.<app>.internal, <app>.flycast)
//     depends on that app's *registry.App, which is replaced only when the
//     app changes — a change to another app leaves it valid;
//   - answers that carry the zone's SOA (negative answers, SOA queries) and
//     answers about the whole org (_apps, _instances, _peer...) depend on the
//     org's generation;
//   - AAAA and SRV answers are ordered for the asker, so their key holds the asker's
//     address and region, and they depend on the registry's region table;
//   - every entry depends on the server's settings (TTLs).

// maxCacheEntries bounds each worker's cache; when full it starts afresh,
// which costs one miss per name and keeps memory flat under floods of
// distinct names or sources.
const maxCacheEntries = 50000

type cacheEntry struct {
	packed  []byte
	info    QueryInfo // what to tell the Observer on a hit
	cfg     *Config
	orgGen  uint64        // used when app is nil
	app     *registry.App // positive app-scoped answers
	regions uintptr       // identity of the region table, for ordered answers
	ordered bool
}

type answerCache struct {
	entries map[string]*cacheEntry
}

func newAnswerCache() *answerCache {
	return &answerCache{entries: make(map[string]*cacheEntry, 1024)}
}

func regionsID(snap *registry.Snapshot) uintptr {
	return reflect.ValueOf(snap.Regions()).Pointer()
}

// cacheKey builds the key of a query into buf: org, lowered name, type,
// reply size limit, EDNS presence and DO bit, and for AAAA and SRV the asker's
// address and region (the order depends on them).
func cacheKey(buf []byte, org *registry.Org, name []byte, wq *wireQuery, size int, src netip.Addr, region string) []byte {
	buf = append(buf[:0], org.Name...)
	buf = append(buf, 0)
	buf = append(buf, name...)
	buf = binary.BigEndian.AppendUint16(buf, wq.qtype)
	buf = binary.BigEndian.AppendUint16(buf, uint16(size))
	var f byte
	if wq.hasOPT {
		f |= 1
	}
	if wq.do {
		f |= 2
	}
	buf = append(buf, f)
	if ordered(wq.qtype) {
		a := src.As16()
		buf = append(buf, a[:]...)
		buf = append(buf, region...)
	}
	return buf
}

// ordered reports whether answers of qtype are ordered for the asker:
// AAAA and SRV (nearest first, ties by the asker's address).
func ordered(qtype uint16) bool { return qtype == dns.TypeAAAA || qtype == dns.TypeSRV }

// valid reports whether e still answers correctly for this snapshot.
func (e *cacheEntry) valid(cfg *Config, snap *registry.Snapshot, org *registry.Org, appLabel []byte) bool {
	if e.cfg != cfg {
		return false
	}
	if e.ordered && e.regions != regionsID(snap) {
		return false
	}
	if e.app != nil {
		// The label is only looked up, never kept: no need to copy it.
		return org.App(unsafe.String(unsafe.SliceData(appLabel), len(appLabel))) == e.app
	}
	return e.orgGen == org.Gen
}

// cacheable says whether a reply may be cached at all: only authoritative
// answers and NXDOMAINs from our zones (not _whoami, which describes the
// asker and never reaches here), never forwarded, refused or failed ones.
func cacheable(m *dns.Msg) bool {
	return m.Authoritative && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError)
}
