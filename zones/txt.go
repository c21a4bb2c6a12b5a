package zones

import (
	"slices"
	"strings"

	"github.com/meshdns/meshdns/registry"
)

// The TXT texts. Clients parse them byte for byte (SPEC §2), so each
// builder sizes its buffer first and writes the exact format; lists are
// sorted by construction (apps and peers are kept sorted by the registry,
// machines sorted by id within an app).

// maxTXTString is the longest character-string a TXT record can hold.
const maxTXTString = 255

// MaxListText is the longest list text an answer carries: MaxAnswer
// (fit.go), the one size limit of answers. With the length byte of each
// 255-byte string, the question, headers and an OPT record a cut list's
// reply stays under 64,400 bytes, inside what every resolver accepts over
// TCP (Knot Resolver 5.6: 65,533).
const MaxListText = MaxAnswer

// capList cuts a list text longer than MaxListText after the last whole
// entry that fits (entries are separated by sep), so a list too long for
// any DNS message still answers with its first entries in sorted order
// rather than with nothing.
func capList(s string, sep byte) string {
	if len(s) <= MaxListText || sep == 0 {
		return s
	}
	i := strings.LastIndexByte(s[:MaxListText+1], sep)
	if i < 0 {
		return ""
	}
	return s[:i]
}

// splitTXT cuts s into consecutive character-strings of at most 255 bytes,
// adding nothing at the cuts: clients concatenate the strings of the one
// record. An empty s is one empty string, so an empty list still answers
// one record holding "".
func splitTXT(s string) []string {
	if len(s) <= maxTXTString {
		return []string{s}
	}
	out := make([]string, 0, (len(s)+maxTXTString-1)/maxTXTString)
	for len(s) > maxTXTString {
		out = append(out, s[:maxTXTString])
		s = s[maxTXTString:]
	}
	return append(out, s)
}

// appsText is _apps.internal: the org's app names joined with ",".
func appsText(org *registry.Org) string {
	return strings.Join(org.AppNames(), ",")
}

// interactivePrefix marks short-lived peers (e.g. created by a CLI for one
// session); _peer.internal leaves them out so the list stays readable.
const interactivePrefix = "interactive-"

// peersText is _peer.internal: peer names joined with ",", without
// interactive ones.
func peersText(org *registry.Org) string {
	names := org.PeerNames()
	n := 0
	for _, p := range names {
		if !strings.HasPrefix(p, interactivePrefix) {
			n += len(p) + 1
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range names {
		if strings.HasPrefix(p, interactivePrefix) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p)
	}
	return b.String()
}

// listed reports whether m belongs in a list: every deployed machine for
// the all. variants, only started ones otherwise. (app.Machines already
// holds deployed machines only.)
func listed(m *registry.Machine, all bool) bool { return all || m.Started() }

// vmsText is vms.<app> / all.vms.<app>: "<id> <region>" joined with ",",
// sorted by id.
func vmsText(app *registry.App, all bool) string {
	n := 0
	for _, m := range app.Machines.All() {
		if listed(m, all) {
			n += len(m.ID) + 1 + len(m.Region) + 1
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, m := range app.Machines.All() {
		if !listed(m, all) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.ID)
		b.WriteByte(' ')
		b.WriteString(m.Region)
	}
	return b.String()
}

// regionsText is regions.<app> / all.regions.<app>: the distinct regions of
// the listed machines, sorted, joined with ",".
func regionsText(app *registry.App, all bool) string {
	var stack [16]string
	rs := stack[:0]
	for _, m := range app.Machines.All() {
		if listed(m, all) && !slices.Contains(rs, m.Region) {
			rs = append(rs, m.Region)
		}
	}
	slices.Sort(rs)
	return strings.Join(rs, ",")
}

// instancesText is _instances / all._instances: one
// "instance=<id>,app=<app>,ip=<ipv6>,region=<region>" entry per machine,
// sorted by app then id, joined with ";".
func instancesText(org *registry.Org, all bool) string {
	const fixed = len("instance=,app=,ip=,region=;")
	n := 0
	for _, name := range org.AppNames() {
		app := org.App(name)
		if app == nil {
			continue
		}
		for _, m := range app.Machines.All() {
			if listed(m, all) {
				n += fixed + len(m.ID) + len(app.Name) + len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") + len(m.Region)
			}
		}
	}
	b := make([]byte, 0, n)
	for _, name := range org.AppNames() {
		app := org.App(name)
		if app == nil {
			continue
		}
		for _, m := range app.Machines.All() {
			if !listed(m, all) {
				continue
			}
			if len(b) > 0 {
				b = append(b, ';')
			}
			b = append(b, "instance="...)
			b = append(b, m.ID...)
			b = append(b, ",app="...)
			b = append(b, app.Name...)
			b = append(b, ",ip="...)
			b = m.IP.AppendTo(b)
			b = append(b, ",region="...)
			b = append(b, m.Region...)
		}
	}
	return string(b)
}

// whoamiText is _whoami.internal, a debugging aid:
//
//	org=<org>,machine=<id>,app=<app>,region=<region>,ip=<src>  (a machine asks)
//	org=<org>,peer=<name>,region=<region>,ip=<src>            (a WireGuard peer asks)
//	org=<org>,region=<region>,ip=<src>                         (anyone else in the org)
//
// region is the asker's region as used for ordering; "region=" is left
// out when there is none.
func whoamiText(a Asker, region string) string {
	b := make([]byte, 0, 128)
	b = append(b, "org="...)
	b = append(b, a.Org.Name...)
	switch {
	case a.Owner.Machine != nil:
		b = append(b, ",machine="...)
		b = append(b, a.Owner.Machine.ID...)
		b = append(b, ",app="...)
		b = append(b, a.Owner.Machine.App...)
	case a.Owner.Peer != nil:
		b = append(b, ",peer="...)
		b = append(b, a.Owner.Peer.Name...)
	}
	if region != "" {
		b = append(b, ",region="...)
		b = append(b, region...)
	}
	b = append(b, ",ip="...)
	if a.Addr.IsValid() {
		b = a.Addr.AppendTo(b)
	}
	return string(b)
}

// checksText is checks.<app>: "<id> <status>" of the started machines,
// status being the worst check or "none", joined with ",", sorted by id.
func checksText(app *registry.App) string {
	var b strings.Builder
	for _, m := range app.Machines.All() {
		if !m.Started() {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.ID)
		b.WriteByte(' ')
		b.WriteString(m.WorstCheck())
	}
	return b.String()
}
