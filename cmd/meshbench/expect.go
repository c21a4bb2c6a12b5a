//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/zones"
)

// What SPEC §2 says a query of the mix must answer, computed from the
// generated registry. Both servers are checked against it, so a wrong
// zone file is caught as surely as a wrong meshdns.

type answer struct {
	Rcode int
	Addrs []netip.Addr // AAAA, sorted
	Text  string       // TXT, the strings of the one record concatenated
	TXTs  int          // number of TXT records
	Size  int          // the reply's size on the wire
}

// expected is the answer to q according to the registry.
func expected(q query) answer {
	a := q.App
	switch q.Kind {
	case "app":
		return answer{Addrs: addrsOf(a.startedIn(""))}
	case "region":
		return answer{Addrs: addrsOf(a.startedIn(q.Arg))}
	case "vm":
		for _, m := range a.Machines {
			if m.ID == q.Arg && m.Started {
				return answer{Addrs: []netip.Addr{m.IP}}
			}
		}
		return answer{}
	case "vms":
		return answer{Text: vmsText(a), TXTs: 1}
	}
	return answer{Rcode: dns.RcodeNameError}
}

// vmsText is vms.<app>.internal: started machines' "<id> <region>"
// sorted by id, joined with ",".
func vmsText(a *app) string {
	ms := a.startedIn("")
	slices.SortFunc(ms, func(x, y *machine) int { return strings.Compare(x.ID, y.ID) })
	var b strings.Builder
	for _, m := range ms {
		entry := m.ID + " " + m.Region
		sep := 0
		if b.Len() > 0 {
			sep = 1
		}
		// docs/DECISIONS.md: a list longer than zones.MaxListText bytes
		// ends after the last whole entry that fits.
		if b.Len()+sep+len(entry) > zones.MaxListText {
			break
		}
		if sep == 1 {
			b.WriteByte(',')
		}
		b.WriteString(entry)
	}
	return b.String()
}

func addrsOf(ms []*machine) []netip.Addr {
	out := make([]netip.Addr, len(ms))
	for i, m := range ms {
		out[i] = m.IP
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// answerOf extracts what we compare from a reply.
func answerOf(m *dns.Msg) answer {
	a := answer{Rcode: m.Rcode, Size: m.Len()}
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.AAAA:
			ip, _ := netip.AddrFromSlice(rr.AAAA)
			a.Addrs = append(a.Addrs, ip)
		case *dns.TXT:
			a.Text += strings.Join(rr.Txt, "")
			a.TXTs++
		}
	}
	slices.SortFunc(a.Addrs, netip.Addr.Compare)
	return a
}

// tcpLimit is where a reply stops fitting a TCP message: SPEC lets the
// server then answer only the nearest machines that fit.
const tcpLimit = 65535 - 512

// diff describes how got differs from want, or returns "".
func diff(want, got answer) string {
	if got.Rcode != want.Rcode {
		return fmt.Sprintf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[want.Rcode])
	}
	if got.TXTs != want.TXTs || got.Text != want.Text {
		return fmt.Sprintf("TXT %d records %.60q..., want %d records %.60q...", got.TXTs, got.Text, want.TXTs, want.Text)
	}
	if slices.Equal(got.Addrs, want.Addrs) {
		return ""
	}
	// An answer cut to fit TCP must still hold only the right machines.
	if got.Size > tcpLimit-64*28 && isSubset(got.Addrs, want.Addrs) {
		return ""
	}
	return fmt.Sprintf("%d AAAA, want %d (first got %v, want %v)", len(got.Addrs), len(want.Addrs), first(got.Addrs), first(want.Addrs))
}

func isSubset(small, big []netip.Addr) bool {
	for _, a := range small {
		if _, ok := slices.BinarySearchFunc(big, a, netip.Addr.Compare); !ok {
			return false
		}
	}
	return true
}

func first(as []netip.Addr) any {
	if len(as) == 0 {
		return "none"
	}
	return as[0]
}
