package zones

import (
	"net/netip"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// Reverse names (SPEC §5): the zone a.a.d.f.ip6.arpa. (fdaa::/16), seen
// through the asker's org like the other zones. A name of 32 nibble labels
// is one address: PTR when the address belongs to the asker's org. A
// shorter name is an empty non-terminal when one of the org's addresses
// lies below it. Everything else, every address of another org included,
// is NXDOMAIN: the answer reads only the asker's org, so another org's
// address and an address nobody holds get the same bytes.

// reverseWord is the reverse zone's apex without its trailing dot.
const reverseWord = "a.a.d.f.ip6.arpa"

// reverseApexNibbles is how many nibbles the apex fixes: f, d, a, a.
const reverseApexNibbles = 4

// parseReverse reads rest, the part of a reverse name before the apex:
// nibble labels, one hex digit each (either case), least significant
// first. It allocates nothing.
func parseReverse(rest string) target {
	// "x.y.z": labels at even offsets, dots at odd ones.
	if len(rest)%2 == 0 || len(rest) > 2*(32-reverseApexNibbles)-1 {
		return target{}
	}
	k := (len(rest) + 1) / 2 // labels
	n := reverseApexNibbles + k
	t := target{kind: reverseName, n: n}
	t.ip[0], t.ip[1] = 0xfd, 0xaa
	for j := 0; j < k; j++ {
		if j > 0 && rest[2*j-1] != '.' {
			return target{}
		}
		v, ok := hexNibble(rest[2*j])
		if !ok {
			return target{}
		}
		p := n - 1 - j // nibble position in the address, 0 = most significant
		if p%2 == 0 {
			t.ip[p/2] |= v << 4
		} else {
			t.ip[p/2] |= v
		}
	}
	return t
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// reverse answers a name below the reverse apex.
func (r *responder) reverse(t target) Result {
	org := r.a.Org
	if t.n < 32 {
		if !org.HasAddrUnder(t.ip, t.n) {
			return r.nxdomain()
		}
		return r.nodata() // empty non-terminal on the way to an address
	}
	name := ptrName(org, netip.AddrFrom16(t.ip))
	if name == "" {
		return r.nxdomain()
	}
	if ok, res := r.asks(dns.TypePTR); !ok {
		return res
	}
	return r.positive([]dns.RR{&dns.PTR{Hdr: header(r.q.Name, dns.TypePTR, r.cfg.TTL), Ptr: name}})
}

// ptrName is what address a of org is, as a name of the internal. or
// flycast. zone, or "" when a is none of org's. One address, one name:
// <network>::3 first (the org's DNS address, whatever else claims it),
// then the machine or peer holding it, then an app's flycast address.
func ptrName(org *registry.Org, a netip.Addr) string {
	if a == org.APIAddr() {
		return "_api.internal."
	}
	if w, ok := org.Owner(a); ok {
		switch {
		case w.Machine != nil:
			return targetName(w.Machine.App, w.Machine.ID)
		case w.Peer != nil:
			return w.Peer.Name + "._peer.internal."
		}
	}
	if app := org.FlycastApp(a); app != nil {
		return app.Name + ".flycast."
	}
	return ""
}
