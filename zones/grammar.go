package zones

import "strings"

// zone is one of the two zones served.
type zone uint8

const (
	zoneNone zone = iota
	zoneInternal
	zoneFlycast
	zoneReverse // a.a.d.f.ip6.arpa. (fdaa::/16): reverse.go
)

// origin is the zone's apex as an owner name.
func (z zone) origin() string {
	switch z {
	case zoneFlycast:
		return "flycast."
	case zoneReverse:
		return reverseWord + "."
	}
	return "internal."
}

// InZone reports whether name lies in internal., flycast. or the reverse
// zone a.a.d.f.ip6.arpa. (fdaa::/16; other ip6.arpa names are not ours), comparing
// ASCII case-insensitively. It allocates nothing. The trailing dot may be
// left out. An escaped dot (`foo\.internal.` is one label under the root)
// does not count as a label boundary.
func InZone(name string) bool {
	z, _, _ := splitZone(name)
	return z != zoneNone
}

// splitZone finds the zone of name and returns what lies before it, in the
// original case and without the separating dot. apex is true for the zone
// apex itself; rest is then "". A name such as ".internal." (an empty
// label) is in the zone, not the apex, with rest "".
func splitZone(name string) (z zone, rest string, apex bool) {
	s := name
	if n := len(s); n > 0 && s[n-1] == '.' && !escaped(s, n-1) {
		s = s[:n-1]
	}
	for _, cand := range [...]struct {
		z    zone
		word string
	}{{zoneInternal, "internal"}, {zoneFlycast, "flycast"}, {zoneReverse, reverseWord}} {
		if len(s) < len(cand.word) || !strings.EqualFold(s[len(s)-len(cand.word):], cand.word) {
			continue
		}
		head := s[:len(s)-len(cand.word)]
		if head == "" {
			return cand.z, "", true
		}
		if head[len(head)-1] != '.' || escaped(head, len(head)-1) {
			continue // "xinternal." or "x\.internal."
		}
		return cand.z, head[:len(head)-1], false
	}
	return zoneNone, "", false
}

// escaped reports whether s[i] is escaped by an odd number of backslashes
// right before it (presentation format: `\.` is a dot inside a label,
// `\\.` a backslash followed by a label boundary).
func escaped(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// kind is what a name under a zone asks for.
type kind uint8

const (
	nxdomain     kind = iota // fits no rule of the grammar
	apex                     // internal. or flycast.
	apiAddr                  // _api
	appList                  // _apps
	instances                // _instances, all._instances
	peerList                 // _peer
	peerAddr                 // <peer>._peer
	whoami                   // _whoami
	appAddrs                 // <app>, global.<app>
	regionAddrs              // <region>.<app>
	machineAddr              // <id>.vm.<app>
	groupAddrs               // <group>.process.<app>
	nearestAddrs             // top<N>.nearest.of.<app>
	metaAddrs                // <value>.<key>.kv._metadata.<app>
	vmList                   // vms.<app>, all.vms.<app>
	regionList               // regions.<app>, all.regions.<app>
	entApp                   // of.<app>, nearest.of.<app>: there while the app is
	entMachines              // vm.<app>, process.<app>: there while a machine is deployed
	entMeta                  // _metadata.<app>, kv._metadata.<app>: while a machine has metadata
	entMetaKey               // <key>.kv._metadata.<app>: while a machine has the key
	flycastAddr              // <app>.flycast
	checkList                // checks.<app>
	srvName                  // _<service>._<protocol>.<app>
	entProto                 // _<protocol>.<app>: while a machine declares a service over it
	reverseName              // nibble labels below a.a.d.f.ip6.arpa.: n nibbles of ip
)

// target is a parsed name: what it asks for and the labels that matter.
// Labels are lowercase; whether they name anything is decided later,
// against the asker's org.
type target struct {
	kind kind
	all  bool     // the all. variant: deployed rather than started machines
	app  string   // the app the name lies under, if any
	arg  string   // region, machine id, process group, peer, metadata key or service
	val  string   // metadata value or service protocol
	n    int      // N of top<N>; nibbles of a reverse name
	ip   [16]byte // a reverse name's nibbles (the first n), the rest zero
}

// maxLabels is the most labels any name of the grammar has below its zone
// (<value>.<key>.kv._metadata.<app>); deeper names are NXDOMAIN at once.
const maxLabels = 5

// parse reads rest, the lowercase part of a name before its zone, and says
// what it asks for. It never allocates: labels are substrings of rest.
func parse(z zone, rest string) target {
	// Registered names are [a-z0-9-_] only and names decoded from the wire
	// never escape those bytes, so a backslash means no match.
	if strings.IndexByte(rest, '\\') >= 0 {
		return target{}
	}
	var buf [maxLabels]string
	n := 0
	for s := rest; ; n++ {
		if n == maxLabels {
			return target{}
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			buf[n] = s
			n++
			break
		}
		buf[n], s = s[:i], s[i+1:]
	}
	for _, l := range buf[:n] {
		if l == "" {
			return target{} // "a..internal.": no name has an empty label
		}
	}
	l := buf[:n]
	if z == zoneFlycast {
		if n == 1 {
			return target{kind: flycastAddr, app: l[0]}
		}
		return target{}
	}
	switch n {
	case 1:
		switch l[0] {
		case "_api":
			return target{kind: apiAddr}
		case "_apps":
			return target{kind: appList}
		case "_instances":
			return target{kind: instances}
		case "_peer":
			return target{kind: peerList}
		case "_whoami":
			return target{kind: whoami}
		}
		return target{kind: appAddrs, app: l[0]}
	case 2:
		switch l[1] {
		case "_peer":
			return target{kind: peerAddr, arg: l[0]}
		case "_instances":
			if l[0] == "all" {
				return target{kind: instances, all: true}
			}
			return target{}
		}
		app := l[1]
		switch l[0] {
		case "global":
			return target{kind: appAddrs, app: app}
		case "vms":
			return target{kind: vmList, app: app}
		case "regions":
			return target{kind: regionList, app: app}
		case "vm", "process":
			return target{kind: entMachines, app: app}
		case "of":
			return target{kind: entApp, app: app}
		case "_metadata":
			return target{kind: entMeta, app: app}
		case "checks":
			return target{kind: checkList, app: app}
		case "_tcp", "_udp":
			return target{kind: entProto, app: app, val: l[0][1:]}
		}
		if isRegionCode(l[0]) && !reservedRegion(l[0]) {
			return target{kind: regionAddrs, app: app, arg: l[0]}
		}
	case 3:
		app := l[2]
		if (l[1] == "_tcp" || l[1] == "_udp") && len(l[0]) > 1 && l[0][0] == '_' {
			return target{kind: srvName, app: app, arg: l[0][1:], val: l[1][1:]}
		}
		switch l[1] {
		case "vm":
			return target{kind: machineAddr, app: app, arg: l[0]}
		case "process":
			return target{kind: groupAddrs, app: app, arg: l[0]}
		case "of":
			if l[0] == "nearest" {
				return target{kind: entApp, app: app}
			}
		case "vms":
			if l[0] == "all" {
				return target{kind: vmList, app: app, all: true}
			}
		case "regions":
			if l[0] == "all" {
				return target{kind: regionList, app: app, all: true}
			}
		case "_metadata":
			if l[0] == "kv" {
				return target{kind: entMeta, app: app}
			}
		}
	case 4:
		app := l[3]
		switch {
		case l[2] == "of" && l[1] == "nearest":
			if n, ok := parseTop(l[0]); ok {
				return target{kind: nearestAddrs, app: app, n: n}
			}
		case l[2] == "_metadata" && l[1] == "kv":
			return target{kind: entMetaKey, app: app, arg: l[0]}
		}
	case 5:
		if l[3] == "_metadata" && l[2] == "kv" {
			return target{kind: metaAddrs, app: l[4], arg: l[1], val: l[0]}
		}
	}
	return target{}
}

// MaxTop is the largest N of top<N>.nearest.of.<app>.
const MaxTop = 64

// parseTop reads "top<N>": N decimal without leading zeros, 1 ≤ N ≤ MaxTop.
// A single spelling per N keeps answers (and caches keyed by name) unique.
func parseTop(s string) (int, bool) {
	d, ok := strings.CutPrefix(s, "top")
	if !ok || len(d) == 0 || len(d) > 2 || d[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
		n = n*10 + int(d[i]-'0')
	}
	if n > MaxTop {
		return 0, false
	}
	return n, true
}

// reservedRegion reports whether a three-letter label is a word of the
// grammar, which the registry never accepts as a region code.
func reservedRegion(s string) bool { return s == "all" || s == "vms" || s == "top" }

// isRegionCode reports whether s has the shape of a region code, three
// letters a–z. Checking the shape first spares a scan of the app's
// machines for names that cannot match.
func isRegionCode(s string) bool {
	return len(s) == 3 && s[0]-'a' < 26 && s[1]-'a' < 26 && s[2]-'a' < 26
}
