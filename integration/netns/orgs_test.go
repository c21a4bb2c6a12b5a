package netns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
)

// asker is a source address inside an asker namespace.
type asker struct {
	ns      string
	src     string
	org     fxOrg
	machine fxMachine // the machine owning src; zero for a source of no org
	nearest string    // address of the org's web machine nearest to it
}

// orgLab is meshdns with both orgs loaded and askers of each org and of
// none, each namespace joined to the host by its own veth pair.
type orgLab struct {
	host               *meshHost
	syd, ams, b, noOrg asker
	nsA, nsB, nsNoOrg  string
	serverAddrs        []string
	hostIf             map[string]string // asker namespace -> its veth end in the host
}

func machine(id string) fxMachine {
	i := slices.IndexFunc(fxMachines, func(m fxMachine) bool { return m.ID == id })
	return fxMachines[i]
}

func newOrgLab(t *testing.T) *orgLab {
	t.Helper()
	return newOrgLabArgs(t, nil)
}

// newOrgLabArgs is newOrgLab with more meshdns flags.
func newOrgLabArgs(t *testing.T, args []string) *orgLab {
	t.Helper()
	requireLab(t)
	l := &orgLab{serverAddrs: []string{"fdaa::3", alpha.dns(), beta.dns()}, hostIf: map[string]string{}}
	l.host = startHostArgs(t, args, l.serverAddrs...)
	l.nsA, l.nsB, l.nsNoOrg = addNS(t, "a"), addNS(t, "b"), addNS(t, "x")
	l.syd = asker{ns: l.nsA, org: alpha, machine: machine("c1"), nearest: machine("a1").IP}
	l.ams = asker{ns: l.nsA, org: alpha, machine: machine("c2"), nearest: machine("a2").IP}
	l.b = asker{ns: l.nsB, org: beta, machine: machine("c3"), nearest: machine("b1").IP}
	l.noOrg = asker{ns: l.nsNoOrg, src: "fd00::1"}
	for _, a := range []*asker{&l.syd, &l.ams, &l.b} {
		a.src = a.machine.IP
	}
	for i, g := range []struct {
		ns   string
		srcs []string
	}{{l.nsA, []string{l.syd.src, l.ams.src}}, {l.nsB, []string{l.b.src}}, {l.nsNoOrg, []string{l.noOrg.src}}} {
		hostIf := fmt.Sprintf("v%d", i)
		connect(t, l.host.ns, hostIf, g.ns)
		l.hostIf[g.ns] = hostIf
		// The asker's addresses sit on its end of the veth, as a
		// machine's 6PN address sits on its interface; each side routes
		// to the other's addresses via its link-local next hop.
		for _, src := range g.srcs {
			ip(t, g.ns, "-6", "addr", "add", src+"/128", "dev", "eth0", "nodad")
			routeVia(t, l.host.ns, hostIf, guestLL, src+"/128")
		}
		for _, a := range l.serverAddrs {
			routeVia(t, g.ns, "eth0", hostLL, a+"/128")
		}
	}
	l.host.meshctl(fxLoad(), "load", "-")
	for _, a := range []asker{l.syd, l.b} {
		err := poll(startupTimeout, func() error {
			r, err := dig(a.ns, "-b", a.src, "@fdaa::3", "txt", "_apps.internal")
			if err != nil {
				return err
			}
			if got := txtOf(r); r.Status != "NOERROR" || got != fxApps(a.org.Name) {
				return fmt.Errorf("%s: _apps.internal is %s %q", a.src, r.Status, got)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("registry never showed in DNS: %v", err)
		}
	}
	return l
}

// txtOf is the text of the TXT answers, strings concatenated as clients do.
func txtOf(r *digtest.Result) string {
	var b strings.Builder
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			b.WriteString(strings.Join(t.Txt, ""))
		}
	}
	return b.String()
}

func aaaaOf(r *digtest.Result) []string {
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.AAAA); ok {
			ips = append(ips, a.AAAA.String())
		}
	}
	return ips
}

// shape is one query of SPEC §2 and what must come back.
type shape struct {
	name, qtype string
	rcode       string
	aaaa        []string // the AAAA answer, any order
	first       string   // the first AAAA, when the order matters
	txt         *string  // the TXT text
	count       int      // answers of another type (SOA, NS)
	ptr         string   // the one PTR record's target
}

func str(s string) *string { return &s }

// shapes are the names of SPEC §2 as a asks them, with the answers from
// the fixture: its own org's data only.
func shapes(a asker) []shape {
	org := a.org.Name
	web := fxIPs(fxMachinesOf(org, "web", false))
	s := []shape{
		{name: "web.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: web, first: a.nearest},
		{name: "global.web.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: web, first: a.nearest},
		{name: "top1.nearest.of.web.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: []string{a.nearest}},
		{name: "web.internal", qtype: "A", rcode: "NOERROR"},
		{name: "_api.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: []string{a.org.dns()}},
		{name: "_apps.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxApps(org))},
		{name: "vms.web.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxVMs(org, "web", false))},
		{name: "all.vms.web.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxVMs(org, "web", true))},
		{name: "regions.web.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxRegions(org, "web", false))},
		{name: "all.regions.web.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxRegions(org, "web", true))},
		{name: "_instances.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxInstances(org, false))},
		{name: "all._instances.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxInstances(org, true))},
		{name: "_peer.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fxPeerList(org))},
		{name: "_whoami.internal", qtype: "TXT", rcode: "NOERROR", txt: str(fmt.Sprintf("org=%s,machine=%s,app=%s,region=%s,ip=%s",
			org, a.machine.ID, a.machine.App, a.machine.Region, a.src))},
		{name: "internal", qtype: "SOA", rcode: "NOERROR", count: 1},
		{name: "internal", qtype: "NS", rcode: "NOERROR", count: 1},
		{name: "flycast", qtype: "SOA", rcode: "NOERROR", count: 1},
		{name: "vm.web.internal", qtype: "AAAA", rcode: "NOERROR"}, // empty non-terminal
		{name: "nothere.internal", qtype: "AAAA", rcode: "NXDOMAIN"},
	}
	for _, m := range fxMachinesOf(org, "web", true) {
		want := []string{m.IP}
		if m.State != "started" {
			want = nil
		}
		s = append(s, shape{name: m.ID + ".vm.web.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: want},
			shape{name: m.Region + ".web.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: want})
	}
	group, meta := map[string][]string{}, map[string][]string{}
	for _, m := range fxMachinesOf(org, "", false) {
		pg := m.ProcessGroup
		if pg == "" {
			pg = "app"
		}
		group[pg+".process."+m.App] = append(group[pg+".process."+m.App], m.IP)
		for k, v := range m.Metadata {
			meta[v+"."+k+".kv._metadata."+m.App] = append(meta[v+"."+k+".kv._metadata."+m.App], m.IP)
		}
	}
	for _, names := range []map[string][]string{group, meta} {
		for n, ips := range names {
			s = append(s, shape{name: n + ".internal", qtype: "AAAA", rcode: "NOERROR", aaaa: ips})
		}
	}
	for _, p := range fxPeersOf(org) {
		s = append(s, shape{name: p.Name + "._peer.internal", qtype: "AAAA", rcode: "NOERROR", aaaa: []string{p.IP}})
	}
	fc, ok := fxFlycast[org+"/web"]
	s = append(s, shape{name: "web.flycast", qtype: "AAAA", rcode: "NOERROR", aaaa: map[bool][]string{true: {fc}}[ok]})
	// The other org's names: answered as names that exist nowhere.
	other := beta
	if org == beta.Name {
		other = alpha
	}
	for _, m := range fxMachines {
		if m.Org != other.Name {
			continue
		}
		if !strings.Contains(","+fxApps(org)+",", ","+m.App+",") {
			s = append(s, shape{name: m.App + ".internal", qtype: "AAAA", rcode: "NXDOMAIN"},
				shape{name: "vms." + m.App + ".internal", qtype: "TXT", rcode: "NXDOMAIN"})
		}
		if m.App == "web" {
			s = append(s, shape{name: m.ID + ".vm.web.internal", qtype: "AAAA", rcode: "NXDOMAIN"})
		}
	}
	for _, p := range fxPeersOf(other.Name) {
		s = append(s, shape{name: p.Name + "._peer.internal", qtype: "AAAA", rcode: "NXDOMAIN"})
	}
	return append(s, reverseShapes(a.org, other)...)
}

// reverseShapes are the reverse names (SPEC §5) of org's addresses —
// PTR for each machine, peer, <network>::3 and flycast address — and of
// the other org's, which are NXDOMAIN as if nobody held them.
func reverseShapes(org, other fxOrg) []shape {
	arpa := func(ip string) string {
		r, err := dns.ReverseAddr(ip)
		if err != nil {
			panic(err)
		}
		return r
	}
	// prefix is the reverse name of the first n nibbles of ip.
	prefix := func(ip string, n int) string { return arpa(ip)[2*(32-n):] }
	s := []shape{
		{name: arpa(org.dns()), qtype: "PTR", rcode: "NOERROR", ptr: "_api.internal."},
		{name: arpa(other.dns()), qtype: "PTR", rcode: "NXDOMAIN"},
		{name: arpa(org.prefix + ":ffff::99"), qtype: "PTR", rcode: "NXDOMAIN"}, // nobody's
		{name: "a.a.d.f.ip6.arpa.", qtype: "SOA", rcode: "NOERROR", count: 1},
		{name: prefix(org.dns(), 12), qtype: "PTR", rcode: "NOERROR"},           // the org's /48: empty non-terminal
		{name: prefix(other.dns(), 12), qtype: "PTR", rcode: "NXDOMAIN"},        // the other's /48
		{name: prefix(org.prefix+":a7b::", 16), qtype: "PTR", rcode: "NOERROR"}, // a /64 of its machines
	}
	for _, m := range fxMachines {
		switch m.Org {
		case org.Name:
			s = append(s, shape{name: arpa(m.IP), qtype: "PTR", rcode: "NOERROR", ptr: m.ID + ".vm." + m.App + ".internal."})
		case other.Name:
			s = append(s, shape{name: arpa(m.IP), qtype: "PTR", rcode: "NXDOMAIN"})
		}
	}
	for _, p := range fxPeers {
		switch p.Org {
		case org.Name:
			s = append(s, shape{name: arpa(p.IP), qtype: "PTR", rcode: "NOERROR", ptr: p.Name + "._peer.internal."})
		case other.Name:
			s = append(s, shape{name: arpa(p.IP), qtype: "PTR", rcode: "NXDOMAIN"})
		}
	}
	for key, fc := range fxFlycast {
		o, app, _ := strings.Cut(key, "/")
		switch o {
		case org.Name:
			s = append(s, shape{name: arpa(fc), qtype: "PTR", rcode: "NOERROR", ptr: app + ".flycast."})
		case other.Name:
			s = append(s, shape{name: arpa(fc), qtype: "PTR", rcode: "NXDOMAIN"})
		}
	}
	return s
}

// check compares one dig result with a shape and looks for the other
// org's names and addresses in it.
func (s shape) check(a asker, r *digtest.Result) error {
	if r.Status != s.rcode {
		return fmt.Errorf("status %s, want %s", r.Status, s.rcode)
	}
	if !r.HasFlag("aa") {
		return fmt.Errorf("no AA flag")
	}
	switch {
	case s.txt != nil:
		if got := txtOf(r); len(r.Answer) != 1 || got != *s.txt {
			return fmt.Errorf("TXT %q (%d records), want %q", got, len(r.Answer), *s.txt)
		}
	case s.count > 0:
		if len(r.Answer) != s.count {
			return fmt.Errorf("%d answers, want %d", len(r.Answer), s.count)
		}
	case s.ptr != "":
		if len(r.Answer) != 1 {
			return fmt.Errorf("answer %v, want PTR %s", r.Answer, s.ptr)
		}
		if p, ok := r.Answer[0].(*dns.PTR); !ok || p.Ptr != s.ptr {
			return fmt.Errorf("answer %v, want PTR %s", r.Answer, s.ptr)
		}
	default:
		got := aaaaOf(r)
		if len(got) != len(r.Answer) || !sameSet(got, s.aaaa) {
			return fmt.Errorf("answer %v, want %v", r.Answer, s.aaaa)
		}
		if s.first != "" && got[0] != s.first {
			return fmt.Errorf("answer %v starts with %s, want the nearest %s first", got, got[0], s.first)
		}
	}
	if s.rcode == "NXDOMAIN" || len(r.Answer) == 0 {
		if len(r.Authority) != 1 || r.Authority[0].Header().Rrtype != dns.TypeSOA {
			return fmt.Errorf("negative answer without the SOA: %v", r.Authority)
		}
	}
	return noForeign(a, r)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// noForeign fails if a reply to a shows an address outside a's network or
// a name only the other org has (owner names aside: they echo the query).
func noForeign(a asker, r *digtest.Result) error {
	network := netip.MustParsePrefix(a.org.Network)
	other := beta
	if a.org == beta {
		other = alpha
	}
	own := map[string]bool{}
	for _, n := range fxNames(a.org) {
		own[n] = true
	}
	for _, rr := range slices.Concat(r.Answer, r.Authority, r.Additional) {
		data := strings.TrimPrefix(rr.String(), rr.Header().String())
		if t, ok := rr.(*dns.TXT); ok {
			data = strings.Join(t.Txt, "")
		}
		for _, tok := range strings.FieldsFunc(data, func(c rune) bool { return strings.ContainsRune(",;= \t\"", c) }) {
			if ip, err := netip.ParseAddr(tok); err == nil && !network.Contains(ip) {
				return fmt.Errorf("address %s of another network in %s", ip, rr)
			}
			if !own[tok] && slices.Contains(fxNames(other), tok) {
				return fmt.Errorf("%q of org %s in %s", tok, other.Name, rr)
			}
		}
	}
	return nil
}

// TestOrgIsolation asks every name shape of SPEC §2 with the real dig from
// machine addresses of two orgs, over UDP at fdaa::3 and over TCP at the
// asker's own <network>::3: each sees its own org's data only, ordered from
// its own region, with replies coming from the address asked.
func TestOrgIsolation(t *testing.T) {
	l := newOrgLab(t)
	for _, a := range []asker{l.syd, l.ams, l.b} {
		t.Run(a.machine.Region+"-"+a.org.Name, func(t *testing.T) {
			t.Parallel()
			for _, s := range shapes(a) {
				for _, via := range []struct{ server, proto string }{{"fdaa::3", "UDP"}, {a.org.dns(), "TCP"}} {
					args := []string{"-b", a.src, "@" + via.server, s.qtype, s.name}
					if via.proto == "TCP" {
						args = append(args, "+tcp")
					}
					r, err := dig(a.ns, args...)
					if err == nil && (r.Server != via.server+"#53" || r.Protocol != via.proto) {
						err = fmt.Errorf("answered by %s over %s", r.Server, r.Protocol)
					}
					if err == nil {
						err = s.check(a, r)
					}
					if err != nil {
						t.Errorf("dig %s: %v", strings.Join(args, " "), err)
						if r != nil {
							t.Logf("%s", r.Raw)
						}
					}
				}
			}
		})
	}
}

// TestRefused checks the REFUSED rules of SPEC §1 through real sockets: a
// source in no org, at fdaa::3 or at an org's address, for in-zone names
// and others (no open resolver); and an asker of one org at the other
// org's <network>::3, whatever it asks.
func TestRefused(t *testing.T) {
	l := newOrgLab(t)
	cases := []struct {
		a      asker
		server string
	}{
		{l.noOrg, "fdaa::3"},
		{l.noOrg, alpha.dns()},
		{l.syd, beta.dns()},
		{l.ams, beta.dns()},
		{l.b, alpha.dns()},
	}
	for _, c := range cases {
		for _, q := range [][2]string{{"AAAA", "web.internal"}, {"TXT", "_whoami.internal"}, {"AAAA", "web.flycast"}, {"A", "example.com"}} {
			for _, proto := range []string{"+notcp", "+tcp"} {
				args := []string{"-b", c.a.src, "@" + c.server, q[0], q[1], proto}
				r, err := dig(c.a.ns, args...)
				if err == nil && (r.Status != "REFUSED" || len(r.Answer)+len(r.Authority) != 0 || r.Server != c.server+"#53") {
					err = fmt.Errorf("got %s with %d answers from %s, want a bare REFUSED from %s", r.Status, len(r.Answer), r.Server, c.server)
				}
				if err != nil {
					t.Errorf("dig %s: %v", strings.Join(args, " "), err)
				}
			}
		}
	}
}

// TestOrgAddedAfterStart registers an org while meshdns runs and only then
// puts its <network>::3 on the host: the wildcard listener answers there at
// once, from that address, over UDP and TCP.
func TestOrgAddedAfterStart(t *testing.T) {
	l := newOrgLab(t)
	gamma := fxOrg{Name: "gamma", Network: "fdaa:0:c::/48", prefix: "fdaa:0:c"}
	src := "fdaa:0:c:a7b:9::2"
	l.host.meshctl("", "org", "put", gamma.Name, "--network", gamma.Network)
	l.host.meshctl("", "machine", "put", "d1", "--org", gamma.Name, "--app", "web", "--region", "ams", "--ip", src)
	ip(t, l.host.ns, "-6", "addr", "add", gamma.dns()+"/128", "dev", "lo")
	ip(t, l.nsB, "-6", "addr", "add", src+"/128", "dev", "eth0", "nodad")
	routeVia(t, l.host.ns, l.hostIf[l.nsB], guestLL, src+"/128")
	routeVia(t, l.nsB, "eth0", hostLL, gamma.dns()+"/128")
	for _, proto := range []string{"+notcp", "+tcp"} {
		args := []string{"-b", src, "@" + gamma.dns(), "aaaa", "web.internal", proto}
		err := poll(startupTimeout, func() error {
			r, err := dig(l.nsB, args...)
			if err != nil {
				return err
			}
			if got := aaaaOf(r); r.Status != "NOERROR" || !slices.Equal(got, []string{src}) || r.Server != gamma.dns()+"#53" {
				return fmt.Errorf("%s %v from %s", r.Status, got, r.Server)
			}
			return nil
		})
		if err != nil {
			t.Errorf("dig %s: %v", strings.Join(args, " "), err)
		}
	}
}
