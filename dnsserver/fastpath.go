package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// worker is the one query pipeline both transports feed: parse, who is
// asking, answer cache, zones, reply (handle). A UDP worker serves one
// reading goroutine; TCP workers are lent to connections for a batch of
// queries at a time (tcp.go). A worker owns its answer cache and scratch
// buffers, so the cached path allocates nothing and shares nothing with
// other workers.
type worker struct {
	s     *Server
	id    int // QueryInfo.Worker
	cache *answerCache
	// tr is the transport the worker serves: it sets the reply size limit
	// (the EDNS size class over UDP, 65535 over TCP), which rate limits
	// apply in here (UDP: the TCP transport applies its own) and the
	// cache key.
	tr Transport
	// slow is set by handle when a TCP query must wait on an upstream
	// (forwarding): the caller answers it with Server.general after giving
	// the worker back, so no connection holds a worker while it waits.
	slow bool
	// conn and from are the socket and client of the packet being handled,
	// for replies sent later by a forwarding goroutine; nil conn (tests)
	// forwards in line.
	conn     udpWriter
	from     netip.AddrPort
	wildcard bool
	lower    [255]byte
	key      []byte
	out      []byte
	tmp      []byte
}

// udpWriter sends one datagram: a *net.UDPConn or a rawUDP socket.
type udpWriter interface {
	WriteMsgUDPAddrPort(b, oob []byte, to netip.AddrPort) (n, oobn int, err error)
}

func (s *Server) newWorker() *worker {
	return &worker{s: s, id: int(s.workers.Add(1)), cache: newAnswerCache(&s.cache), key: make([]byte, 0, 512), out: make([]byte, 0, 4096), tmp: make([]byte, 0, 512)}
}

// general answers a query through the general path for this worker's
// transport.
func (w *worker) general(raw []byte, src, dst netip.Addr) []byte {
	return w.s.general(Query{Raw: raw, Src: src, Dst: dst, Transport: w.tr})
}

const (
	flagQR     = 1 << 15
	flagOpcode = 0xF << 11
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
)

// handle answers one query arriving over w.tr, from the cache when it can.
// It returns nil when no reply is due (or, over TCP, when w.slow is set).
// The returned slice is reused by the next call.
func (w *worker) handle(raw []byte, src, dst netip.Addr) []byte {
	s := w.s
	rl := s.limiter.Load()
	udp := w.tr == UDP
	if !udp {
		// The TCP transport applies the rate limit itself: over it, the
		// connection is closed (tcp.go).
		rl = nil
	}
	w.slow = false
	wq, ok := parseQuery(raw, &w.lower)
	// A valid server cookie proves the source (cookie.go); the rate limit
	// counts such queries apart.
	var (
		now             uint32
		verified, fresh bool
	)
	if ok && wq.cookieLen == replyCookieLen && !wq.cookieBad {
		now = s.cookieNow()
		verified, fresh = s.cookies.check(raw[wq.cookieOff:wq.cookieOff+wq.cookieLen], src, now)
	}
	if v := rl.check(src, verified, false); v != pass {
		return w.overLimit(v, raw, &wq, ok, src)
	}
	if !ok || wq.cookieBad || wq.flags&(flagQR|flagOpcode) != 0 || wq.qclass != dns.ClassINET ||
		(wq.hasOPT && wq.version != 0) || wq.qtype == dns.TypeAXFR || wq.qtype == dns.TypeIXFR {
		return w.general(raw, src, dst)
	}
	name := w.lower[:wq.nameLen]
	// What the answer depends on, and whether it is ours: zones decides.
	scope := zones.WireScope(name)
	inZone := scope.InZone
	if !inZone && s.cfg.Load().Forwarder != nil {
		// Forwarding waits on an upstream: never in this worker.
		if !udp {
			w.slow = true
			return nil
		}
		if w.conn != nil {
			return w.forwardAsync(raw, src, dst)
		}
	}
	if !inZone || scope.PerAsker {
		return w.general(raw, src, dst)
	}
	snap := s.store.Snapshot()
	cfg := s.cfg.Load()
	if snap == nil {
		return w.general(raw, src, dst)
	}
	asker, ok := identify(snap, src, dst, cfg.DefaultOrg)
	if !ok {
		return w.general(raw, src, dst)
	}
	var start time.Time
	if cfg.Observer != nil {
		start = time.Now() // costly on some VMs: only when someone listens
	}
	// The region AAAA and SRV answers are ordered from: zones decides.
	region := asker.Region(cfg.Zones)
	size := maxTCPSize
	if udp {
		size = dns.MinMsgSize
		if wq.hasOPT {
			size = udpReplySize(wq.udpSize, cfg.UDPSize)
		}
	}
	w.key = cacheKey(w.key, asker.Org, name, &wq, size, w.tr, asker.Addr, region)
	e := w.cache.get(w.key)
	hit := e != nil && e.valid(cfg, snap, asker.Org, scope.App)
	if !hit {
		if e = w.fill(raw, &wq, scope, src, dst, cfg, snap, asker.Org, verified); e == nil {
			// fill answered through the general path, rate limits included.
			if len(w.out) == 0 {
				return nil
			}
			return w.out
		}
	}
	if hit && udp && e.info.Rcode == dns.RcodeNameError {
		if v := rl.check(src, verified, true); v != pass {
			return w.overLimit(v, raw, &wq, true, src)
		}
	}
	out := append(w.out[:0], e.packed...)
	binary.BigEndian.PutUint16(out[0:2], wq.id)
	f := binary.BigEndian.Uint16(out[2:4])&^(flagRD|flagCD) | wq.flags&(flagRD|flagCD)
	binary.BigEndian.PutUint16(out[2:4], f)
	copy(out[12:wq.qEnd], raw[12:wq.qEnd])
	if e.cookie {
		// The cached reply holds some earlier client's cookie: answer
		// this one's.
		if now == 0 {
			now = s.cookieNow()
		}
		s.cookies.reply(out[len(out)-replyCookieLen:], raw[wq.cookieOff:wq.cookieOff+wq.cookieLen], src, now, fresh)
	}
	w.out = out
	if obs := cfg.Observer; obs != nil && hit {
		info := e.info
		info.Cached = true
		info.Src = src
		info.Worker = w.id
		info.Transport = w.tr
		info.Duration = time.Since(start)
		obs.ObserveQuery(info)
	}
	return out
}

// overLimit is the reply to a query over a rate limit: nil (dropped), or
// for a slip a TC=1 reply with only the question (and the COOKIE answered),
// when the query could be parsed.
func (w *worker) overLimit(v verdict, raw []byte, wq *wireQuery, parsed bool, src netip.Addr) []byte {
	if v != slip || !parsed || wq.flags&(flagQR|flagOpcode) != 0 {
		w.s.limited.udp(w.id, false)
		return nil
	}
	w.s.limited.udp(w.id, true)
	w.out = w.s.appendSlip(w.out[:0], raw, wq, src)
	return w.out
}

// fill answers a cache miss through the general path, from a copy of the
// query with its name lowercased, and caches the reply when it may be.
// When it may not, the reply is left in w.out and fill returns nil.
func (w *worker) fill(raw []byte, wq *wireQuery, scope zones.Scope, src, dst netip.Addr, cfg *Config, snap *registry.Snapshot, org *registry.Org, verified bool) *cacheEntry {
	s := w.s
	w.tmp = append(w.tmp[:0], raw...)
	copy(w.tmp[12:wq.qEnd], w.lower[:wq.nameLen])
	start := time.Now()
	req := new(dns.Msg)
	if err := req.Unpack(w.tmp); err != nil {
		w.out = append(w.out[:0], w.general(raw, src, dst)...)
		return nil
	}
	m, info := s.reply(req, Query{Src: src, Dst: dst, Transport: w.tr})
	if w.tr == UDP && isErrorRcode(m.Rcode) {
		if v := s.limiter.Load().check(src, verified, true); v != pass {
			if w.overLimit(v, raw, wq, true, src) == nil {
				w.out = w.out[:0]
			}
			return nil
		}
	}
	// reply compresses: every owner name that repeats the question is a
	// pointer to it, so patching the question's case fixes theirs too.
	packed, err := m.Pack()
	if err != nil {
		w.out = append(w.out[:0], w.general(raw, src, dst)...)
		return nil
	}
	info.Size = len(packed)
	if !cacheable(m) || wq.cookieLen != 0 && !endsWithCookie(packed) {
		out := append(w.out[:0], packed...)
		copy(out[12:wq.qEnd], raw[12:wq.qEnd])
		w.out = out
		s.observe(info, start)
		return nil
	}
	e := &cacheEntry{packed: packed, cfg: cfg, info: info, orgGen: org.Gen, cookie: wq.cookieLen != 0}
	e.ordered = ordered(wq.qtype)
	if e.ordered {
		e.regions = regionsID(snap)
	}
	// Positive answers under an app depend on that app alone; everything
	// else on the whole org (zones.Scope says which).
	if app := scope.AnswerApp(wq.qtype, len(m.Answer) > 0); len(app) > 0 {
		e.app = org.App(string(app))
	}
	w.cache.put(w.key, e, cfg.AnswerCacheBytes, int(s.workers.Load()))
	s.observe(info, start)
	return e
}

// endsWithCookie reports whether a packed reply ends with an OPT record
// whose only option is a COOKIE with a client and a server cookie, the
// shape edns gives replies to queries with a cookie.
func endsWithCookie(p []byte) bool {
	const optLen = 11 + 4 + replyCookieLen
	if len(p) < 12+optLen {
		return false
	}
	o := p[len(p)-optLen:]
	return o[0] == 0 && binary.BigEndian.Uint16(o[1:3]) == dns.TypeOPT &&
		binary.BigEndian.Uint16(o[9:11]) == 4+replyCookieLen &&
		binary.BigEndian.Uint16(o[11:13]) == optCookie && binary.BigEndian.Uint16(o[13:15]) == replyCookieLen
}

// forwardAsync answers a query for a name outside our zones on its own
// goroutine, so a slow upstream holds up no worker. In-flight forwards are
// bounded; past the bound the query gets SERVFAIL at once.
func (w *worker) forwardAsync(raw []byte, src, dst netip.Addr) []byte {
	s := w.s
	q := Query{Raw: raw, Src: src, Dst: dst, Transport: UDP}
	select {
	case s.forwardSlots <- struct{}{}:
	default:
		return headerOnlyReply(raw, dns.RcodeServerFailure)
	}
	q.Raw = append([]byte(nil), raw...)
	conn, from := w.conn, w.from
	wildcard := w.wildcard
	go func() {
		defer func() { <-s.forwardSlots }()
		out := s.general(q)
		if out == nil {
			return
		}
		var ctl []byte
		if wildcard {
			ctl = srcControl(make([]byte, 0, oobSize), dst)
		}
		if _, _, err := conn.WriteMsgUDPAddrPort(out, ctl, from); err != nil && !s.closing.Load() {
			s.log.Debug("udp write failed", zap.Stringer("to", from), zap.Error(err))
		}
	}()
	return nil
}
