package dnsserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// The isolation property (SPEC §1: nothing about one org is visible to
// another), checked over random registries. For every org A, every asker of
// A and every query shape of SPEC §2, with names taken from every org:
//
//  1. the UDP general path, the cached UDP path (miss and hit, asked at A's
//     own <network>::3 instead of fdaa::3, one worker cache for all orgs)
//     and TCP carry the same message (TCP: unless UDP had to truncate);
//  2. the reply holds no address outside A's network (but the asker's own,
//     in _whoami) and no org, app, machine, peer, group or metadata name
//     that only other orgs have;
//  3. non-interference: the reply is byte for byte the same when any other
//     org B is removed from the registry, so a name that exists only in B
//     gets exactly the answer of a name that exists nowhere — and the same
//     holds, checked directly, against fresh random names in place of B's;
//  4. changes to other orgs leave every reply to A as it was, SOA serial
//     included, through the warm caches too; a change to A moves A's serial;
//     Machines carry random health checks and services (SPEC §5): the
//     health-aware AAAA names, checks.<app> TXT and SRV are asked too.
//     Reverse names (SPEC §5, a.a.d.f.ip6.arpa.) are asked for every
//     address of every org (machines in any state, peers, flycast,
//     <network>::3), for nibble prefixes on the way to them, and for
//     addresses nobody holds: another org's address must answer exactly as
//     an unused one.
//  5. sources in no org are REFUSED, and so is an asker of A at another
//     org's <network>::3; with --default-org, sources in no org see that
//     org's data only.

// isoSeeds are fixed registries checked on every run; quick adds fresh ones.
var isoSeeds = []uint64{1, 2, 3, 42, 17913462319945126216}

func TestIsolationProperty(t *testing.T) {
	for _, seed := range isoSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { checkIsolation(t, seed) })
	}
	n := 3
	if testing.Short() {
		n = 1
	}
	err := quick.Check(func(seed uint64) bool {
		return t.Run(fmt.Sprintf("quick/seed=%d", seed), func(t *testing.T) { checkIsolation(t, seed) })
	}, &quick.Config{MaxCount: n})
	if err != nil {
		t.Error(err)
	}
}

// isoClock is the time the test store stamps serials with.
var isoClock = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func checkIsolation(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := genWorld(r)
	c := &isoChecker{t: t, foreign: map[*isoOrg]map[string]string{}}
	now := isoClock
	store, s := isoServer(t, w.text(""), &now, "")
	queries := w.queries(r)

	// 1, 2: every asker of every org, every query, every path.
	type asked struct {
		a     *isoOrg
		src   netip.Addr
		reply [][]byte
	}
	var all []*asked
	// One worker, as in production: its cache serves every org.
	wk := s.newWorker()
	for _, a := range w.orgs {
		for _, src := range a.askers(r) {
			x := &asked{a: a, src: src}
			for _, q := range queries {
				out, tcp := c.allPaths(s, wk, q, src, a.api())
				c.noLeak(w, a, src, q, out)
				c.noLeak(w, a, src, q, tcp)
				x.reply = append(x.reply, out)
			}
			all = append(all, x)
		}
	}

	// 3: the same replies without each other org.
	for _, b := range w.orgs {
		_, sb := isoServer(t, w.text(b.name), &now, "")
		for _, x := range all {
			if x.a == b {
				continue
			}
			for i, q := range queries {
				if out := ask(sb, q, x.src, meshDNS, UDP); !bytes.Equal(out, x.reply[i]) {
					c.fail("%s asking %s: reply changes when org %s is removed:\nwith    %s\nwithout %s", x.src, q, b.name, show(x.reply[i]), show(out))
				}
			}
		}
	}
	c.freshNames(s, w, r)
	c.reverseModel(s, w)

	// 4: change one org at a time; the others' replies stay put.
	rev := int64(strings.Count(w.text(""), "\n"))
	for _, b := range w.orgs {
		now = now.Add(100 * time.Second)
		rev += 100
		store.Apply(rev, b.mutation(r, rev, w))
		for _, x := range all {
			if x.a == b {
				continue
			}
			for i, q := range queries {
				if out, _ := c.allPaths(s, wk, q, x.src, x.a.api()); !bytes.Equal(out, x.reply[i]) {
					c.fail("%s asking %s: reply changes when org %s changes:\nbefore %s\nafter  %s", x.src, q, b.name, show(x.reply[i]), show(out))
				}
			}
		}
		if got, want := serialOf(t, s, b.machineSrc()), uint32(now.Unix()); got != want {
			c.fail("org %s changed at %d, its serial is %d", b.name, want, got)
		}
		// Refresh what b's askers see, for the next rounds.
		for _, x := range all {
			if x.a == b {
				for i, q := range queries {
					x.reply[i] = ask(s, q, x.src, meshDNS, UDP)
				}
			}
		}
	}

	t.Logf("%d orgs, %d askers, %d queries each, %d name pairs", len(w.orgs), len(all), len(queries), c.pairs)

	// 5: refused askers.
	c.refused(s, wk, w, queries) // wk's cache is warm: nothing may come from it
	_, sd := isoServer(t, w.text(""), &now, w.orgs[0].name)
	for _, src := range noOrgSources {
		wk := sd.newWorker()
		for _, q := range queries {
			udp, tcp := c.allPaths(sd, wk, q, src, w.orgs[0].api())
			c.noLeak(w, w.orgs[0], src, q, udp)
			c.noLeak(w, w.orgs[0], src, q, tcp)
		}
	}
}

var (
	meshDNS      = netip.MustParseAddr("fdaa::3")
	noOrgSources = []netip.Addr{
		netip.MustParseAddr("fd00::1"),
		netip.MustParseAddr("fdaa:ffff:ffff::1"), // in fdaa::/16, in no org
		netip.MustParseAddr("::1"),
		netip.MustParseAddr("192.0.2.1"),
	}
)

func isoServer(t *testing.T, text string, now *time.Time, defaultOrg string) (*registry.Store, *Server) {
	t.Helper()
	evs, err := registry.ParseText(registry.DefaultPrefix, text)
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore(registry.DefaultPrefix, registry.WithClock(func() time.Time { return *now }))
	store.Replace(int64(len(evs)), evs)
	if n := store.InvalidCount(); n != 0 {
		t.Fatalf("generated registry has %d invalid keys: %v", n, store.Invalid())
	}
	s := New(Config{Listen: []string{"127.0.0.1:0"}, DefaultOrg: defaultOrg,
		Zones: zones.Config{TTL: 5, NegTTL: 5, ServerRegion: "ams"}}, store)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return store, s
}

type isoQuery struct {
	name  string
	qtype uint16
}

func (q isoQuery) String() string { return q.name + " " + dns.TypeToString[q.qtype] }

func (q isoQuery) raw() []byte {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.Id = 4242
	raw, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return raw
}

func ask(s *Server, q isoQuery, src, dst netip.Addr, tr Transport) []byte {
	return s.HandlePacket(Query{Raw: q.raw(), Src: src, Dst: dst, Transport: tr})
}

func show(out []byte) string {
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		return fmt.Sprintf("(%x: %v)", out, err)
	}
	return strings.ReplaceAll(m.String(), "\n", " | ")
}

// canon is a reply packed again without name compression.
func canon(out []byte) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		return out
	}
	m.Compress = false
	b, err := m.Pack()
	if err != nil {
		return out
	}
	return b
}

func serialOf(t *testing.T, s *Server, src netip.Addr) uint32 {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(ask(s, isoQuery{"internal.", dns.TypeSOA}, src, meshDNS, UDP)); err != nil || len(m.Answer) != 1 {
		t.Fatalf("SOA for %s: %v %v", src, err, m)
	}
	return m.Answer[0].(*dns.SOA).Serial
}

// isoChecker reports the first few failures of one registry in full.
type isoChecker struct {
	t       *testing.T
	fails   int
	foreign map[*isoOrg]map[string]string
	pairs   int // name pairs compared by freshNames
}

func (c *isoChecker) fail(format string, args ...any) {
	c.t.Helper()
	if c.fails++; c.fails <= 10 {
		c.t.Errorf(format, args...)
	} else if c.fails == 11 {
		c.t.Error("more failures left out")
	}
}

// allPaths asks q through every path and returns the general UDP path's
// reply and the TCP one. The cached path must carry the same message as
// the general one, and so must TCP unless UDP had to truncate. Messages are
// compared unpacked: whether names are compressed is up to each path.
func (c *isoChecker) allPaths(s *Server, wk *worker, q isoQuery, src, orgDNS netip.Addr) (udp, tcp []byte) {
	c.t.Helper()
	raw := q.raw()
	udp = s.HandlePacket(Query{Raw: raw, Src: src, Dst: meshDNS, Transport: UDP})
	for i, got := range [][]byte{bytes.Clone(wk.handle(raw, src, orgDNS)), bytes.Clone(wk.handle(raw, src, orgDNS))} {
		if !bytes.Equal(canon(got), canon(udp)) {
			c.fail("%s asking %s: the cached path (%s) differs from the general one:\ngeneral %s\ncached  %s", src, q, []string{"miss", "hit"}[i], show(udp), show(got))
		}
	}
	tcp = s.HandlePacket(Query{Raw: raw, Src: src, Transport: TCP})
	if truncated := len(udp) > 2 && udp[2]&2 != 0; !truncated && !bytes.Equal(canon(udp), canon(tcp)) {
		c.fail("%s asking %s: TCP differs from UDP:\nudp %s\ntcp %s", src, q, show(udp), show(tcp))
	}
	return udp, tcp
}

// noLeak checks that a reply to an asker of org a shows nothing that only
// other orgs have.
func (c *isoChecker) noLeak(w *isoWorld, a *isoOrg, src netip.Addr, q isoQuery, out []byte) {
	c.t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		c.fail("%s asking %s: reply does not unpack: %v", src, q, err)
		return
	}
	foreign := c.foreign[a]
	if foreign == nil {
		foreign = w.foreignTokens(a)
		c.foreign[a] = foreign
	}
	for _, rr := range slices.Concat(m.Answer, m.Ns, m.Extra) {
		// Only the data: owner names echo the question, which may well
		// name another org's app.
		text := strings.TrimPrefix(rr.String(), rr.Header().String())
		if t, ok := rr.(*dns.TXT); ok {
			text = strings.Join(t.Txt, "") // clients concatenate the strings
		}
		for _, tok := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == ':' || r == '.' || r == '_')
		}) {
			if ip, err := netip.ParseAddr(tok); err == nil {
				if !a.net.Contains(ip) && ip != src.Unmap() {
					c.fail("%s (org %s) asking %s: address %s outside its org in %s", src, a.name, q, ip, rr)
				}
				continue
			}
			for _, word := range strings.Split(tok, ".") {
				if owner := foreign[word]; owner != "" {
					c.fail("%s (org %s) asking %s: %q of org %s in %s", src, a.name, q, word, owner, rr)
				}
			}
		}
	}
}

// refused checks rule 5 for every query.
func (c *isoChecker) refused(s *Server, wk *worker, w *isoWorld, queries []isoQuery) {
	c.t.Helper()
	check := func(src, dst netip.Addr, q isoQuery, why string) {
		raw := q.raw()
		for i, out := range [][]byte{
			s.HandlePacket(Query{Raw: raw, Src: src, Dst: dst, Transport: UDP}),
			bytes.Clone(wk.handle(raw, src, dst)),
			s.HandlePacket(Query{Raw: raw, Src: src, Dst: dst, Transport: TCP}),
		} {
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil || m.Rcode != dns.RcodeRefused || len(m.Answer)+len(m.Ns) != 0 || m.Authoritative {
				c.fail("%s asking %s at %s (%s; %s): want a bare REFUSED, got %s", src, q, dst, why, []string{"udp", "cached udp", "tcp"}[i], show(out))
			}
		}
	}
	for _, q := range queries {
		for _, src := range noOrgSources {
			check(src, meshDNS, q, "source in no org")
		}
		for _, a := range w.orgs {
			b := w.orgs[(slices.Index(w.orgs, a)+1)%len(w.orgs)]
			check(a.machineSrc(), b.api(), q, "another org's DNS address")
		}
	}
}

// reverseModel checks that the reverse names asked above are answered at
// all (the isolation rules would hold for a server that refused them): each
// org's askers get the PTR of each of its addresses that SPEC §5 names, and
// NXDOMAIN for a destroyed or skip_registration machine's address.
func (c *isoChecker) reverseModel(s *Server, w *isoWorld) {
	c.t.Helper()
	for _, a := range w.orgs {
		want := map[netip.Addr]string{a.api(): "_api.internal."}
		for app, fc := range a.appKeys {
			if fc.IsValid() {
				want[fc] = app + ".flycast."
			}
		}
		for _, p := range a.peers {
			want[p.ip] = p.name + "._peer.internal."
		}
		for _, m := range a.machines {
			if m.state == "destroyed" || m.skip {
				want[m.ip] = ""
			} else {
				want[m.ip] = m.id + ".vm." + m.app + ".internal."
			}
		}
		for ip, name := range want {
			m := new(dns.Msg)
			out := ask(s, isoQuery{reverseName(ip), dns.TypePTR}, a.machineSrc(), meshDNS, UDP)
			if err := m.Unpack(out); err != nil {
				c.fail("PTR %s: %v", ip, err)
				continue
			}
			got := ""
			if len(m.Answer) == 1 {
				if p, ok := m.Answer[0].(*dns.PTR); ok {
					got = p.Ptr
				}
			}
			if got != name || name == "" && m.Rcode != dns.RcodeNameError || !m.Authoritative {
				c.fail("org %s asking PTR of its %s: want %q, got %s", a.name, ip, name, show(out))
			}
		}
	}
}

// freshNames checks rule 3 directly: a name whose label exists only in
// another org gets the reply of the same name with a label no org has,
// the name itself aside.
func (c *isoChecker) freshNames(s *Server, w *isoWorld, r *rand.Rand) {
	c.t.Helper()
	for _, a := range w.orgs {
		src := a.machineSrc()
		for _, p := range w.onlyElsewhere(a, r) {
			c.pairs++
			for _, qt := range []uint16{dns.TypeAAAA, dns.TypeTXT, dns.TypeA, dns.TypeANY, dns.TypeSRV, dns.TypePTR} {
				got := normalized(ask(s, isoQuery{p[0], qt}, src, meshDNS, UDP))
				want := normalized(ask(s, isoQuery{p[1], qt}, src, meshDNS, UDP))
				if got != want {
					c.fail("%s asking %s %s (exists elsewhere) vs %s (exists nowhere):\n%s\n%s", src, p[0], dns.TypeToString[qt], p[1], got, want)
				}
			}
		}
	}
}

// normalized is a reply with the question's name replaced, for comparing
// the replies to two names.
func normalized(out []byte) string {
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		return err.Error()
	}
	q := m.Question[0].Name
	m.Question[0].Name = "Q."
	for _, rr := range slices.Concat(m.Answer, m.Ns) {
		if strings.EqualFold(rr.Header().Name, q) {
			rr.Header().Name = "Q."
		}
	}
	return fmt.Sprintf("len=%d %s", len(out)-len(q), m)
}

// The registries: a model of the orgs, turned into registry text.

type isoMachine struct {
	app, id, region, state, group string
	ip                            netip.Addr
	meta                          map[string]string
	skip                          bool
	checks                        map[string]string
	services                      []registry.Service
}

type isoPeer struct {
	name, region string
	ip           netip.Addr
}

type isoOrg struct {
	name     string
	net      netip.Prefix
	appKeys  map[string]netip.Addr // apps with a key, and their flycast (may be zero)
	machines []isoMachine
	peers    []isoPeer
}

type isoWorld struct{ orgs []*isoOrg }

var (
	sharedApps  = []string{"web", "db", "api", "worker"}
	sharedPeers = []string{"laptop", "ci", "interactive-ab12"}
	isoRegions  = []string{"ams", "syd", "iad", "fra", "nrt", "qxv"} // qxv: unknown
	isoGroups   = []string{"app", "app", "worker"}
	isoStates   = append([]string{"started", "started", "started"}, registry.States...)
	isoChecks   = []string{"http", "pg", "disk_io"}
	isoServices = []string{"http", "pg", "grpc"}
)

// genHealth gives m random checks and services (SPEC §5), with names
// other orgs use and fresh ones.
func genHealth(r *rand.Rand, m *isoMachine) {
	if r.IntN(3) > 0 {
		m.checks = map[string]string{}
		for range 1 + r.IntN(3) {
			name := pick(r, isoChecks)
			if r.IntN(4) == 0 {
				name = label(r, 5)
			}
			m.checks[name] = pick(r, registry.CheckStatuses)
		}
	}
	if r.IntN(3) > 0 {
		for range 1 + r.IntN(3) {
			name := pick(r, isoServices)
			if r.IntN(4) == 0 {
				name = label(r, 5)
			}
			sv := registry.Service{Name: name, Protocol: pick(r, []string{"tcp", "udp"}), Port: 1 + r.IntN(65535)}
			if !slices.ContainsFunc(m.services, func(x registry.Service) bool { return x.Name == sv.Name && x.Protocol == sv.Protocol }) {
				m.services = append(m.services, sv)
			}
		}
	}
}

func label(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

func hexID(r *rand.Rand) string { return fmt.Sprintf("%x", r.Uint64()>>(4*r.IntN(10))) }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func genWorld(r *rand.Rand) *isoWorld {
	w := &isoWorld{}
	nets := map[uint16]bool{0xffff: true}
	var ids []string // machine ids, reused across orgs now and then
	for range 2 + r.IntN(3) {
		n := uint16(r.IntN(0x10000))
		for nets[n] {
			n = uint16(r.IntN(0x10000))
		}
		nets[n] = true
		o := &isoOrg{name: "org" + label(r, 5), net: netip.MustParsePrefix(fmt.Sprintf("fdaa:0:%x::/48", n)), appKeys: map[string]netip.Addr{}}
		apps := []string{}
		for _, a := range sharedApps {
			if r.IntN(2) == 0 {
				apps = append(apps, a)
			}
		}
		for range r.IntN(3) {
			apps = append(apps, label(r, 6))
		}
		for ai, app := range apps {
			if r.IntN(3) > 0 {
				var fc netip.Addr
				if r.IntN(2) == 0 {
					fc = o.addr(0, uint16(ai+1), 5)
				}
				o.appKeys[app] = fc
			}
			nm := r.IntN(5)
			if _, keyed := o.appKeys[app]; !keyed && nm == 0 {
				nm = 1 // an app without a key exists through its machines
			}
			for mi := range nm {
				id := hexID(r)
				if len(ids) > 0 && r.IntN(8) == 0 {
					id = pick(r, ids)
				}
				// Ids repeat across apps on purpose, never within one: a
				// second value of the same key would replace the first.
				for slices.ContainsFunc(o.machines, func(m isoMachine) bool { return m.id == id && m.app == app }) {
					id += "f"
				}
				ids = append(ids, id)
				m := isoMachine{app: app, id: id, region: pick(r, isoRegions), state: pick(r, isoStates),
					group: pick(r, isoGroups), ip: o.addr(0xa7b, uint16(ai+1), uint16(mi+2)), skip: r.IntN(12) == 0}
				switch r.IntN(4) {
				case 0:
					m.meta = map[string]string{"role": pick(r, []string{"primary", "replica"})}
				case 1:
					m.meta = map[string]string{label(r, 4): label(r, 4)}
				}
				genHealth(r, &m)
				o.machines = append(o.machines, m)
			}
		}
		for i := range r.IntN(4) {
			name := label(r, 6)
			if i < len(sharedPeers) && r.IntN(2) == 0 {
				name = sharedPeers[i]
			}
			o.peers = append(o.peers, isoPeer{name: name, region: pick(r, isoRegions), ip: o.addr(0xfffe, 0, uint16(i+2))})
		}
		w.orgs = append(w.orgs, o)
	}
	return w
}

// addr is <network>:<subnet>:<a>::<b>.
func (o *isoOrg) addr(subnet, a, b uint16) netip.Addr {
	x := o.net.Addr().As16()
	x[6], x[7], x[8], x[9], x[14], x[15] = byte(subnet>>8), byte(subnet), byte(a>>8), byte(a), byte(b>>8), byte(b)
	return netip.AddrFrom16(x)
}

func (o *isoOrg) api() netip.Addr { return o.addr(0, 0, 3) }

// machineSrc is an address of o that no machine or peer owns.
func (o *isoOrg) machineSrc() netip.Addr { return o.addr(0xbeef, 0, 1) }

func jsonValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (m isoMachine) line(org string) string {
	v := map[string]any{
		"region": m.region, "ip": m.ip, "state": m.state, "process_group": m.group,
		"metadata": m.meta, "skip_registration": m.skip}
	if m.checks != nil {
		v["checks"] = m.checks
	}
	if m.services != nil {
		v["services"] = m.services
	}
	return fmt.Sprintf("machines/%s/%s/%s %s", org, m.app, m.id, jsonValue(v))
}

// text is the registry of every org but skip.
func (w *isoWorld) text(skip string) string {
	var b strings.Builder
	for _, o := range w.orgs {
		if o.name == skip {
			continue
		}
		fmt.Fprintf(&b, "orgs/%s %s\n", o.name, jsonValue(map[string]any{"network": o.net}))
		for app, fc := range o.appKeys {
			v := map[string]any{}
			if fc.IsValid() {
				v["flycast"] = fc
			}
			fmt.Fprintf(&b, "apps/%s/%s %s\n", o.name, app, jsonValue(v))
		}
		for _, m := range o.machines {
			b.WriteString(m.line(o.name) + "\n")
		}
		for _, p := range o.peers {
			fmt.Fprintf(&b, "peers/%s/%s %s\n", o.name, p.name, jsonValue(map[string]any{"ip": p.ip, "region": p.region}))
		}
	}
	return b.String()
}

// askers are some machine and peer addresses of o (stopped and destroyed
// machines included), and an address of o that nothing owns.
func (o *isoOrg) askers(r *rand.Rand) []netip.Addr {
	srcs := []netip.Addr{o.machineSrc()}
	for _, i := range r.Perm(len(o.machines))[:min(3, len(o.machines))] {
		srcs = append(srcs, o.machines[i].ip)
	}
	for _, i := range r.Perm(len(o.peers))[:min(2, len(o.peers))] {
		srcs = append(srcs, o.peers[i].ip)
	}
	return srcs
}

func (o *isoOrg) apps() []string {
	var apps []string
	for app := range o.appKeys {
		apps = append(apps, app)
	}
	for _, m := range o.machines {
		apps = append(apps, m.app)
	}
	slices.Sort(apps)
	return slices.Compact(apps)
}

// foreignTokens maps every name that other orgs have and a does not to
// one org that has it.
func (w *isoWorld) foreignTokens(a *isoOrg) map[string]string {
	own := map[string]bool{a.name: true}
	for _, n := range a.names() {
		own[n] = true
	}
	// The keywords of the TXT formats are everyone's.
	for _, k := range []string{"org", "machine", "peer", "app", "instance", "ip", "region",
		"passing", "warning", "critical", "none", "vm", "internal", "tcp", "udp",
		"_api", "_peer", "flycast", "ip6", "arpa"} {
		own[k] = true
	}
	out := map[string]string{}
	for _, b := range w.orgs {
		if b == a {
			continue
		}
		for _, n := range append(b.names(), b.name) {
			if !own[n] {
				out[n] = b.name
			}
		}
	}
	return out
}

// names are the labels o's registry holds: apps, ids, groups, metadata,
// peers.
func (o *isoOrg) names() []string {
	names := o.apps()
	for _, m := range o.machines {
		names = append(names, m.id, m.group)
		for k, v := range m.meta {
			names = append(names, k, v)
		}
		for k := range m.checks {
			names = append(names, k)
		}
		for _, sv := range m.services {
			names = append(names, sv.Name)
		}
	}
	for _, p := range o.peers {
		names = append(names, p.name)
	}
	return names
}

// queries are every shape of SPEC §2 with the names of every org and names
// of none, each with a type it holds and one other.
func (w *isoWorld) queries(r *rand.Rand) []isoQuery {
	var qs []isoQuery
	add := func(name string, types ...uint16) {
		for _, t := range types {
			qs = append(qs, isoQuery{name, t})
		}
	}
	addr := func(name string) { add(name, dns.TypeAAAA, pick(r, []uint16{dns.TypeA, dns.TypeTXT, dns.TypeANY})) }
	txt := func(name string) { add(name, dns.TypeTXT, pick(r, []uint16{dns.TypeAAAA, dns.TypeANY})) }
	for _, z := range []string{"internal.", "flycast.", "a.a.d.f.ip6.arpa."} {
		add(z, dns.TypeSOA, dns.TypeNS, dns.TypeAAAA, dns.TypeANY)
	}
	qs = append(qs, w.reverseQueries(r)...)
	addr("_api.internal.")
	for _, n := range []string{"_apps", "_instances", "all._instances", "_peer", "_whoami"} {
		txt(n + ".internal.")
	}
	add("all.internal.", dns.TypeTXT)
	add("example.com.", dns.TypeA) // outside the zones: REFUSED, no forwarder
	apps := []string{label(r, 7)}
	peers := []string{label(r, 7)}
	for _, o := range w.orgs {
		apps = append(apps, o.apps()...)
		for _, p := range o.peers {
			peers = append(peers, p.name)
		}
	}
	slices.Sort(apps)
	for _, app := range slices.Compact(apps) {
		for _, n := range []string{"", "global.", "top1.nearest.of.", "top3.nearest.of."} {
			addr(n + app + ".internal.")
		}
		for _, n := range []string{"vms.", "all.vms.", "regions.", "all.regions.", "checks."} {
			txt(n + app + ".internal.")
		}
		for _, n := range []string{"_tcp.", "_udp."} {
			add(n+app+".internal.", dns.TypeSRV)
		}
		for _, sv := range w.services(app, r) {
			add(sv+"."+app+".internal.", dns.TypeSRV, pick(r, []uint16{dns.TypeAAAA, dns.TypeANY, dns.TypeTXT}))
		}
		for _, n := range []string{"vm.", "process.", "of.", "nearest.of.", "_metadata.", "kv._metadata.", "all."} {
			add(n+app+".internal.", dns.TypeAAAA)
		}
		addr(app + ".flycast.")
		for _, l := range w.subLabels(app, r) {
			addr(l + "." + app + ".internal.")
		}
	}
	for _, p := range peers {
		addr(p + "._peer.internal.")
	}
	return qs
}

// addrs are every address o's registry names: machines (any state,
// skip_registration too), peers, flycast addresses and <network>::3.
func (o *isoOrg) addrs() []netip.Addr {
	out := []netip.Addr{o.api()}
	for _, m := range o.machines {
		out = append(out, m.ip)
	}
	for _, p := range o.peers {
		out = append(out, p.ip)
	}
	for _, fc := range o.appKeys {
		if fc.IsValid() {
			out = append(out, fc)
		}
	}
	return out
}

// reverseName is the ip6.arpa name of a.
func reverseName(a netip.Addr) string {
	name, err := dns.ReverseAddr(a.String())
	if err != nil {
		panic(err)
	}
	return name
}

// nibblePrefix is the reverse name of the first n nibbles of a full
// reverse name (32 nibble labels and ip6.arpa.).
func nibblePrefix(name string, n int) string { return name[2*(32-n):] }

// reverseQueries are reverse names (SPEC §5): every address of every org,
// nibble prefixes on the way to some of them, addresses and prefixes no
// org holds, and names in ip6.arpa outside fdaa::/16 (REFUSED here: no
// forwarder).
func (w *isoWorld) reverseQueries(r *rand.Rand) []isoQuery {
	var qs []isoQuery
	ptr := func(name string) {
		qs = append(qs, isoQuery{name, dns.TypePTR}, isoQuery{name, pick(r, []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeTXT})})
	}
	for _, o := range w.orgs {
		for i, ip := range o.addrs() {
			ptr(reverseName(ip))
			if i < 3 {
				name := reverseName(ip)
				for _, n := range []int{5, 12, 16, 20 + r.IntN(12)} {
					ptr(nibblePrefix(name, n))
				}
			}
		}
		x := o.api().As16()
		x[15] = byte(0x10 + r.IntN(0xe0)) // an address of o nobody holds
		ptr(reverseName(netip.AddrFrom16(x)))
		ptr(reverseName(o.machineSrc()))
	}
	var x [16]byte
	x[0], x[1], x[4], x[5] = 0xfd, 0xaa, 0xff, 0xff // fdaa:0:ffff::/48: no org's
	for i := range x[6:] {
		x[6+i] = byte(r.IntN(256))
	}
	ptr(reverseName(netip.AddrFrom16(x)))
	ptr(nibblePrefix(reverseName(netip.AddrFrom16(x)), 12))
	ptr("a.a.d.f.ip6.arpa.")
	ptr("f.ip6.arpa.")
	ptr(reverseName(netip.MustParseAddr("2001:db8::1")))
	return qs
}

// services are the _<service>._<protocol> labels of one app in any org,
// and made-up ones.
func (w *isoWorld) services(app string, r *rand.Rand) []string {
	ls := []string{"_" + label(r, 5) + "._tcp", "_http._udp"}
	for _, o := range w.orgs {
		for _, m := range o.machines {
			if m.app == app {
				for _, sv := range m.services {
					ls = append(ls, "_"+sv.Name+"._"+sv.Protocol)
				}
			}
		}
	}
	slices.Sort(ls)
	return slices.Compact(ls)
}

// subLabels are the names below one app in any org, and made-up ones:
// regions, machines, process groups, metadata.
func (w *isoWorld) subLabels(app string, r *rand.Rand) []string {
	ls := []string{"zqx", hexID(r) + ".vm", label(r, 6) + ".process", label(r, 4) + "." + label(r, 4) + ".kv._metadata"}
	for _, o := range w.orgs {
		for _, m := range o.machines {
			if m.app != app {
				continue
			}
			ls = append(ls, m.region, m.id+".vm", m.group+".process")
			for k, v := range m.meta {
				ls = append(ls, v+"."+k+".kv._metadata", k+".kv._metadata")
			}
		}
	}
	slices.Sort(ls)
	return slices.Compact(ls)
}

// onlyElsewhere pairs names built from labels other orgs have and a lacks
// with the same names built from fresh labels.
func (w *isoWorld) onlyElsewhere(a *isoOrg, r *rand.Rand) [][2]string {
	ownApps := a.apps()
	has := func(app string, f func(isoMachine) bool) bool {
		return slices.ContainsFunc(a.machines, func(m isoMachine) bool { return m.app == app && f(m) })
	}
	var pairs [][2]string
	for _, b := range w.orgs {
		if b == a {
			continue
		}
		// Reverse names: each of b's addresses (and the prefixes on the
		// way to them) against the same name in fdaa:0:ffff::/48, which
		// no org holds.
		for _, ip := range b.addrs() {
			fresh := ip.As16()
			fresh[4], fresh[5] = 0xff, 0xff
			name, freshName := reverseName(ip), reverseName(netip.AddrFrom16(fresh))
			pairs = append(pairs, [2]string{name, freshName})
			for _, nibbles := range []int{12, 16, 20 + r.IntN(12)} {
				pairs = append(pairs, [2]string{nibblePrefix(name, nibbles), nibblePrefix(freshName, nibbles)})
			}
		}
		for _, p := range b.peers {
			if !slices.ContainsFunc(a.peers, func(q isoPeer) bool { return q.name == p.name }) {
				pairs = append(pairs, [2]string{p.name + "._peer.internal.", label(r, 8) + "._peer.internal."})
			}
		}
		for _, app := range b.apps() {
			if !slices.Contains(ownApps, app) {
				fresh := label(r, 8)
				for _, n := range []string{"", "global.", "vms.", "all.vms.", "regions.", "vm.", "of.", "top2.nearest.of.", "_metadata.", "checks.", "_tcp.", "_http._tcp."} {
					pairs = append(pairs, [2]string{n + app + ".internal.", n + fresh + ".internal."})
				}
				pairs = append(pairs, [2]string{app + ".flycast.", fresh + ".flycast."})
				continue
			}
			for _, m := range b.machines {
				if m.app != app {
					continue
				}
				tail := "." + app + ".internal."
				if !has(app, func(x isoMachine) bool { return x.id == m.id }) {
					pairs = append(pairs, [2]string{m.id + ".vm" + tail, hexID(r) + "0.vm" + tail})
				}
				if !has(app, func(x isoMachine) bool { return x.region == m.region }) {
					pairs = append(pairs, [2]string{m.region + tail, "zqx" + tail})
				}
				if !has(app, func(x isoMachine) bool { return x.group == m.group }) {
					pairs = append(pairs, [2]string{m.group + ".process" + tail, label(r, 7) + ".process" + tail})
				}
				for _, sv := range m.services {
					if !has(app, func(x isoMachine) bool {
						_, ok := (&registry.Machine{Services: x.services}).Offers(sv.Name, sv.Protocol)
						return ok
					}) {
						pairs = append(pairs, [2]string{"_" + sv.Name + "._" + sv.Protocol + tail, "_" + label(r, 7) + "._" + sv.Protocol + tail})
					}
				}
				for k, v := range m.meta {
					if !has(app, func(x isoMachine) bool { _, ok := x.meta[k]; return ok }) {
						fk := label(r, 7)
						pairs = append(pairs, [2]string{k + ".kv._metadata" + tail, fk + ".kv._metadata" + tail},
							[2]string{v + "." + k + ".kv._metadata" + tail, v + "." + fk + ".kv._metadata" + tail})
					} else if !has(app, func(x isoMachine) bool { return x.meta[k] == v }) {
						pairs = append(pairs, [2]string{v + "." + k + ".kv._metadata" + tail, label(r, 7) + "." + k + ".kv._metadata" + tail})
					}
				}
			}
		}
	}
	return pairs
}

// mutation changes org o only, as etcd events at revision rev: a new
// machine in a region and app other orgs use, a state change, a removed
// machine, a new peer, a new app under a name another org has.
func (o *isoOrg) mutation(r *rand.Rand, rev int64, w *isoWorld) []registry.Event {
	ev := func(line string) registry.Event {
		key, val, _ := strings.Cut(line, " ")
		return registry.Event{Key: registry.DefaultPrefix + key, Value: []byte(val), CreateRevision: rev, ModRevision: rev}
	}
	other := w.orgs[(slices.Index(w.orgs, o)+1)%len(w.orgs)]
	app := pick(r, append(other.apps(), "web"))
	evs := []registry.Event{
		ev(isoMachine{app: app, id: "ab" + hexID(r), region: pick(r, isoRegions), state: "started", group: "app",
			ip: o.addr(0xa7b, 0x99, uint16(rev))}.line(o.name)),
		ev(fmt.Sprintf("peers/%s/%s %s", o.name, label(r, 6), jsonValue(map[string]any{"ip": o.addr(0xfffe, 0, uint16(rev)), "region": "syd"}))),
		ev(fmt.Sprintf("apps/%s/%s {}", o.name, pick(r, append(other.apps(), label(r, 5))))),
	}
	if len(o.machines) > 0 {
		m := pick(r, o.machines)
		m.state = pick(r, registry.States)
		evs = append(evs, ev(m.line(o.name)))
		// A health check or service change, as meshctl machine check makes.
		h := pick(r, o.machines)
		genHealth(r, &h)
		h.checks = map[string]string{pick(r, isoChecks): pick(r, registry.CheckStatuses)}
		evs = append(evs, ev(h.line(o.name)))
		d := pick(r, o.machines)
		evs = append(evs, registry.Event{Key: registry.DefaultPrefix + fmt.Sprintf("machines/%s/%s/%s", o.name, d.app, d.id), Delete: true, ModRevision: rev})
	}
	return evs
}

// TestSerialSurvivesFullReload: a full reload (after a compacted watch, a
// reconnect, a restart) publishes every org anew. An org that did not
// change must keep its SOA serial: otherwise its askers see the serial move
// because of activity elsewhere — other orgs' writes are what push etcd to
// compact — and the serial would not be "moves only when that org changes"
// (docs/DECISIONS.md).
func TestSerialSurvivesFullReload(t *testing.T) {
	const reg = `orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/other/web/0b01 {"region":"ams","ip":"fdaa:0:19:a7b:1::2","state":"started"}
`
	now := isoClock
	store, s := isoServer(t, reg, &now, "")
	acme, other := netip.MustParseAddr("fdaa:0:18:a7b:1::2"), netip.MustParseAddr("fdaa:0:19:a7b:1::2")
	before := serialOf(t, s, acme)

	// The same registry (the same keys at the same revisions), loaded again.
	now = now.Add(100 * time.Second)
	evs, _ := registry.ParseText(registry.DefaultPrefix, reg)
	store.Replace(100, evs)
	if got := serialOf(t, s, acme); got != before {
		t.Errorf("an unchanged org's serial moved from %d to %d on a full reload", before, got)
	}

	// A reload that finds only other changed.
	now = now.Add(100 * time.Second)
	evs, _ = registry.ParseText(registry.DefaultPrefix, reg+
		`machines/other/web/0b02 {"region":"iad","ip":"fdaa:0:19:a7b:1::3","state":"started"}`+"\n")
	// (ParseText numbers revisions by line: acme's keys keep theirs.)
	store.Replace(300, evs)
	if got := serialOf(t, s, acme); got != before {
		t.Errorf("acme's serial moved from %d to %d on a full reload where only other changed", before, got)
	}
	if got := serialOf(t, s, other); got <= before {
		t.Errorf("other changed, but its serial is %d (was %d)", got, before)
	}
}
