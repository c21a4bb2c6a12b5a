package zones

import (
	"net/netip"
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// mustSnap builds a snapshot from registry text lines at the golden clock.
func mustSnap(t testing.TB, text string) *registry.Snapshot {
	t.Helper()
	snap, _, err := registry.SnapshotFromText(text, registry.WithClock(func() time.Time { return goldenLoad }))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// askerAt is the asker with source address addr, as dnsserver would find it.
func askerAt(t testing.TB, snap *registry.Snapshot, addr string) Asker {
	t.Helper()
	a := netip.MustParseAddr(addr)
	org := snap.OrgOf(a)
	if org == nil {
		t.Fatalf("no org holds %s", addr)
	}
	owner, _ := org.Owner(a)
	return Asker{Org: org, Addr: a, Owner: owner}
}

func question(name string, qtype uint16) dns.Question {
	return dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
}

// addrs lists the AAAA addresses of an answer, in order.
func addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if a, ok := rr.(*dns.AAAA); ok {
			out = append(out, a.AAAA.String())
		}
	}
	return out
}
