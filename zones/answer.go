package zones

import (
	"strings"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// Answer answers one question for one asker from snap. q.Name is the owner
// name of every answer record exactly as asked (0x20 case preserved);
// matching is ASCII case-insensitive. Names outside internal., flycast.
// and a.a.d.f.ip6.arpa. return InZone false and nothing else. In-zone names get REFUSED when the
// asker has no org or the class is neither IN nor ANY (the zones are
// class IN; a zero Qclass counts as IN for callers that build questions
// by hand). Only a.Org and snap's region table are read, so an answer
// never shows anything of another org.
func Answer(snap *registry.Snapshot, a Asker, q dns.Question, cfg Config) Result {
	z, rest, isApex := splitZone(q.Name)
	if z == zoneNone {
		return Result{Rcode: dns.RcodeRefused}
	}
	if a.Org == nil || !classIN(q.Qclass) {
		return Result{Rcode: dns.RcodeRefused, InZone: true}
	}
	r := responder{snap: snap, a: a, q: q, cfg: cfg.withDefaults(), z: z}
	t := target{kind: apex}
	switch {
	case isApex:
	case z == zoneReverse:
		t = parseReverse(rest) // either case; no copy
	default:
		t = parse(z, strings.ToLower(rest))
	}
	return r.answer(t)
}

func classIN(c uint16) bool {
	return c == dns.ClassINET || c == dns.ClassANY || c == 0
}

// responder answers one question; it lives for one call of Answer.
type responder struct {
	snap *registry.Snapshot
	a    Asker
	q    dns.Question
	cfg  Config
	z    zone
}

func (r *responder) answer(t target) Result {
	org := r.a.Org
	var app *registry.App
	if t.app != "" {
		if app = org.App(t.app); app == nil {
			return r.nxdomain()
		}
	}
	switch t.kind {
	case apex:
		return r.apex()
	case apiAddr:
		if ok, res := r.asks(dns.TypeAAAA); !ok {
			return res
		}
		return r.positive(aaaaRecord(r.q.Name, r.cfg.TTL, org.APIAddr()))
	case peerAddr:
		p := org.Peer(t.arg)
		if p == nil {
			return r.nxdomain()
		}
		if ok, res := r.asks(dns.TypeAAAA); !ok {
			return res
		}
		return r.positive(aaaaRecord(r.q.Name, r.cfg.TTL, p.IP))
	case machineAddr:
		m := app.Machine(t.arg)
		if m == nil {
			return r.nxdomain()
		}
		if ok, res := r.asks(dns.TypeAAAA); !ok {
			return res
		}
		if !m.Started() {
			return r.nodata()
		}
		return r.positive(aaaaRecord(r.q.Name, r.cfg.TTL, m.IP))
	case flycastAddr:
		if ok, res := r.asks(dns.TypeAAAA); !ok {
			return res
		}
		if !app.Flycast.IsValid() {
			return r.nodata()
		}
		return r.positive(aaaaRecord(r.q.Name, r.cfg.TTL, app.Flycast))
	case appAddrs:
		return r.machines(app, filter{}, 0)
	case regionAddrs:
		return r.machines(app, filter{by: byRegion, a: t.arg}, 0)
	case groupAddrs:
		return r.machines(app, filter{by: byGroup, a: t.arg}, 0)
	case metaAddrs:
		return r.machines(app, filter{by: byMeta, a: t.arg, b: t.val}, 0)
	case nearestAddrs:
		return r.machines(app, filter{}, t.n)
	case appList:
		return r.text(',', func() string { return appsText(org) })
	case peerList:
		return r.text(',', func() string { return peersText(org) })
	case instances:
		return r.text(';', func() string { return instancesText(org, t.all) })
	case whoami:
		return r.text(0, func() string { return whoamiText(r.a, r.a.Region(r.cfg)) })
	case vmList:
		return r.text(',', func() string { return vmsText(app, t.all) })
	case regionList:
		return r.text(',', func() string { return regionsText(app, t.all) })
	case entApp:
		return r.nodata()
	case entMachines:
		if app.Machines.Len() == 0 {
			return r.nxdomain()
		}
		return r.nodata()
	case entMeta:
		if !anyMachine(app, hasMetadata, "") {
			return r.nxdomain()
		}
		return r.nodata()
	case checkList:
		return r.text(',', func() string { return checksText(app) })
	case srvName:
		return r.srv(app, t.arg, t.val)
	case entProto:
		if !anyMachine(app, hasProtocol, t.val) {
			return r.nxdomain()
		}
		return r.nodata()
	case entMetaKey:
		if !anyMachine(app, hasMetadataKey, t.arg) {
			return r.nxdomain()
		}
		return r.nodata()
	case reverseName:
		return r.reverse(t)
	}
	return r.nxdomain()
}

// apex answers internal., flycast. and a.a.d.f.ip6.arpa. themselves.
func (r *responder) apex() Result {
	switch r.q.Qtype {
	case dns.TypeSOA:
		return r.positive([]dns.RR{soa(r.q.Name, r.a.Org, r.cfg)})
	case dns.TypeNS:
		return r.positive([]dns.RR{ns(r.q.Name, r.cfg)})
	case dns.TypeANY:
		return r.positive(hinfoRecord(r.q.Name, r.cfg.TTL))
	}
	return r.nodata()
}

// asks decides a name that exists and holds records of type rrtype. ok is
// true when the question asks for that type; otherwise res is the whole
// answer: the RFC 8482 HINFO for ANY, NODATA for any other type (an A
// query for an app is NODATA, never NXDOMAIN).
func (r *responder) asks(rrtype uint16) (ok bool, res Result) {
	switch r.q.Qtype {
	case rrtype:
		return true, Result{}
	case dns.TypeANY:
		return false, r.positive(hinfoRecord(r.q.Name, r.cfg.TTL))
	}
	return false, r.nodata()
}

// text answers a TXT name that exists: one record. The text is built only
// when a TXT question asks for it; a list too long for any DNS message is
// cut after the last whole entry (entries end at sep) that fits, and the
// Result says so (ListCut).
func (r *responder) text(sep byte, build func() string) Result {
	if ok, res := r.asks(dns.TypeTXT); !ok {
		return res
	}
	text := build()
	capped := capList(text, sep)
	res := r.positive(txtRecord(r.q.Name, r.cfg.TTL, capped))
	res.ListCut = len(capped) < len(text)
	return res
}

// machines answers an AAAA name that stands for the started machines of
// app matching f, nearest first, at most limit of them (0: all). The name
// exists while a deployed machine matches (for the whole app: while the
// app exists), even if none is started. Health-aware (SPEC §5), it answers
// the healthy ones among them, or all of them when none is (fail open).
func (r *responder) machines(app *registry.App, f filter, limit int) Result {
	want := r.q.Qtype == dns.TypeAAAA
	exists, n, healthy := f.scan(app, want)
	if !exists {
		return r.nxdomain()
	}
	if ok, res := r.asks(dns.TypeAAAA); !ok {
		return res
	}
	if n == 0 {
		return r.nodata()
	}
	var buf [MaxTop]ranked
	rs, failOpen := r.rank(&buf, app, f, limit, n, healthy)
	res := r.positive(aaaaRecords(r.q.Name, r.cfg.TTL, rs))
	res.FailOpen = failOpen
	return res
}

// rank picks the machines of app matching f that an answer holds — the
// n started ones, or the healthy ones of them when health counts and
// there are any — and returns them nearest first, at most limit (0: all,
// and never more than could fit in the reply). failOpen says that health
// counts but none of the started machines is healthy. A short answer is
// kept in buf.
func (r *responder) rank(buf *[MaxTop]ranked, app *registry.App, f filter, limit, n, healthy int) (rs []ranked, failOpen bool) {
	healthOnly := !r.cfg.IgnoreHealth && healthy > 0 && healthy < n
	failOpen = !r.cfg.IgnoreHealth && healthy == 0
	if healthOnly {
		n = healthy
	}
	pick := func(m *registry.Machine) bool {
		if healthOnly {
			return m.Healthy() && f.match(m)
		}
		return m.Started() && f.match(m)
	}
	var regs map[string]*registry.Region
	if r.snap != nil {
		regs = r.snap.Regions()
	}
	o := newOrigin(NewRegions(regs), r.a.Region(r.cfg))
	seed := addrSeed(r.a.Addr)
	// Only the nearest that could fit in the reply matter: the server
	// cuts the rest, so ranking all of a big app would be wasted work.
	if fit := r.cfg.fitBound(); fit > 0 && (limit == 0 || fit < limit) {
		limit = fit
	}
	if limit > 0 && limit < n && limit <= MaxTop {
		best := buf[:0]
		for _, m := range app.Machines.All() {
			if pick(m) {
				best = keepBest(best, rankOf(m, &o, seed), limit)
			}
		}
		return best, failOpen
	}
	rs = make([]ranked, 0, n)
	for _, m := range app.Machines.All() {
		if pick(m) {
			rs = append(rs, rankOf(m, &o, seed))
		}
	}
	if limit > 0 && limit < n {
		rs = nearest(rs, limit)
	} else {
		sortRanked(rs)
	}
	return rs, failOpen
}

// srv answers _<service>._<protocol>.<app>: one SRV record per machine
// that offers the service and is picked as for an AAAA name, in that
// order, the priority being the rank of the machine's distance class; the
// targets' AAAA records go in the additional section (the server drops
// those that do not fit).
func (r *responder) srv(app *registry.App, service, protocol string) Result {
	f := filter{by: byService, a: service, b: protocol}
	exists, n, healthy := f.scan(app, r.q.Qtype == dns.TypeSRV)
	if !exists {
		return r.nxdomain()
	}
	if ok, res := r.asks(dns.TypeSRV); !ok {
		return res
	}
	if n == 0 {
		return r.nodata()
	}
	var buf [MaxTop]ranked
	rs, failOpen := r.rank(&buf, app, f, 0, n, healthy)
	res := r.positive(srvRecords(r.q.Name, r.cfg.TTL, app.Name, service, protocol, rs))
	res.Extra = targetRecords(r.cfg.TTL, app.Name, rs)
	res.FailOpen = failOpen
	return res
}

// positive is NOERROR with rrs, or NODATA when rrs is empty.
func (r *responder) positive(rrs []dns.RR) Result {
	if len(rrs) == 0 {
		return r.nodata()
	}
	return Result{Rcode: dns.RcodeSuccess, Answer: rrs, InZone: true}
}

// nodata is NOERROR without answers: the name exists (or has names below
// it) but holds nothing of the asked type. The SOA lets resolvers cache it.
func (r *responder) nodata() Result {
	return Result{Rcode: dns.RcodeSuccess, Ns: []dns.RR{soa(r.z.origin(), r.a.Org, r.cfg)}, InZone: true}
}

// nxdomain says the name does not exist in the asker's org and has nothing
// below it.
func (r *responder) nxdomain() Result {
	return Result{Rcode: dns.RcodeNameError, Ns: []dns.RR{soa(r.z.origin(), r.a.Org, r.cfg)}, InZone: true}
}
