package dnsserver

import (
	"context"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/zones"
)

// Transport says how a query arrived; it decides the reply size limit.
type Transport uint8

const (
	UDP Transport = iota
	TCP
)

func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// maxTCPSize is the most a DNS message can carry over TCP.
const maxTCPSize = dns.MaxMsgSize

// Query is one packet to answer: its bytes and where it came from and went.
type Query struct {
	Raw       []byte
	Src       netip.Addr
	Dst       netip.Addr // the address it was sent to, when known
	Transport Transport
}

// HandlePacket answers one raw DNS message. It returns nil when the packet
// deserves no reply at all: too short to hold a header, or itself a
// response (answering those would let anyone bounce traffic off us).
// The reply never exceeds what the transport and the client allow.
func (s *Server) HandlePacket(q Query) []byte {
	if rl := s.limiter.Load(); q.Transport == UDP && rl != nil {
		if v := rl.check(q.Src, s.verifiedSource(q.Raw, q.Src), false); v != pass {
			return s.overLimit(v, q.Raw, q.Src)
		}
	}
	return s.general(q)
}

// isErrorRcode marks the answers response rate limiting applies to.
func isErrorRcode(rcode int) bool {
	return rcode == dns.RcodeRefused || rcode == dns.RcodeNameError
}

// general is the path every query can take: unpack with miekg/dns, answer,
// pack. Over UDP, error answers are subject to response rate limiting.
func (s *Server) general(q Query) []byte {
	raw := q.Raw
	if len(raw) < 12 {
		return nil
	}
	flags := binary.BigEndian.Uint16(raw[2:4])
	if flags&(1<<15) != 0 { // QR: a response, not a query
		return nil
	}
	start := time.Now()
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		out := headerOnlyReply(raw, dns.RcodeFormatError)
		s.observe(QueryInfo{Rcode: dns.RcodeFormatError, Transport: q.Transport, Src: q.Src, Size: len(out)}, start)
		return out
	}
	resp, info := s.reply(req, q)
	if rl := s.limiter.Load(); q.Transport == UDP && isErrorRcode(resp.Rcode) && rl != nil {
		if v := rl.check(q.Src, s.verifiedSource(raw, q.Src), true); v != pass {
			return s.overLimit(v, raw, q.Src)
		}
	}
	out, err := resp.Pack()
	if err != nil {
		s.log.Error("cannot pack a reply; answering SERVFAIL", zap.Error(err))
		out = headerOnlyReply(raw, dns.RcodeServerFailure)
		info.Rcode = dns.RcodeServerFailure
	}
	info.Size = len(out)
	s.observe(info, start)
	return out
}

func (s *Server) observe(info QueryInfo, start time.Time) {
	if obs := s.cfg.Load().Observer; obs != nil {
		info.Duration = time.Since(start)
		obs.ObserveQuery(info)
	}
}

// headerOnlyReply answers a message we could not parse with its header
// and, when it parses, its one question: same id and opcode, QR set, RD
// copied for QUERY (it is defined for no other opcode), no other records.
// It is never larger than the request.
func headerOnlyReply(raw []byte, rcode int) []byte {
	end := questionEnd(raw)
	out := make([]byte, end)
	copy(out, raw[:end])
	in := binary.BigEndian.Uint16(raw[2:4])
	const opcodeMask, rdBit = 0x7800, 0x0100
	f := uint16(1<<15) | in&opcodeMask | uint16(rcode&0xF)
	if in&opcodeMask == 0 {
		f |= in & rdBit
	}
	binary.BigEndian.PutUint16(out[2:4], f)
	var qd uint16
	if end > 12 {
		qd = 1
	}
	binary.BigEndian.PutUint16(out[4:6], qd)
	clear(out[6:12])
	return out
}

// questionEnd is the offset just past the question of raw when it holds
// exactly one, with an uncompressed name of at most 255 bytes; else 12
// (the header alone).
func questionEnd(raw []byte) int {
	if len(raw) < 12 || binary.BigEndian.Uint16(raw[4:6]) != 1 {
		return 12
	}
	off := 12
	for {
		if off >= len(raw) || off-12 >= 255 {
			return 12
		}
		l := int(raw[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return 12
		}
		off += 1 + l
	}
	if off-12 > 255 || off+4 > len(raw) {
		return 12
	}
	return off + 4
}

// reply builds the answer to a parsed query.
func (s *Server) reply(req *dns.Msg, q Query) (*dns.Msg, QueryInfo) {
	info := QueryInfo{Transport: q.Transport, Src: q.Src}
	if len(req.Question) > 0 {
		info.Name, info.Qtype = req.Question[0].Name, req.Question[0].Qtype
	}
	m := s.build(req, q, &info)
	info.Rcode, info.Truncated = m.Rcode, m.Truncated
	// A cut list that did not fit a UDP reply (TC) went nowhere: the
	// client asks again over TCP, where it counts.
	info.ListCut = info.ListCut && len(m.Answer) > 0
	return m, info
}

func (s *Server) build(req *dns.Msg, q Query, info *QueryInfo) *dns.Msg {
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	if req.Opcode == dns.OpcodeQuery {
		// RD and CD are defined for QUERY only (RFC 1035 §4.1.1, RFC 6840
		// §5.9); a reply to another opcode leaves them clear.
		m.RecursionDesired = req.RecursionDesired
		m.CheckingDisabled = req.CheckingDisabled
	}
	if len(req.Question) == 1 {
		// Every reply, errors included, repeats a question that parsed.
		m.Question = req.Question
	}
	// EDNS first (a malformed OPT is FORMERR, an unknown version BADVERS),
	// then TSIG, then the opcode, as BIND and NSD order them. A query with
	// an OPT gets ours whatever the rcode (RFC 6891 §7).
	opt, size, rcode := s.edns(req, q)
	var tsig *dns.TSIG
	if rcode == dns.RcodeSuccess {
		tsig, rcode = badKey(req)
	}
	switch {
	case rcode != dns.RcodeSuccess:
		// BADVERS, NOTAUTH (TSIG), or FORMERR for a malformed OPT, COOKIE
		// or TSIG: no answer.
		m.Rcode = rcode
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	default:
		qn := req.Question[0]
		switch {
		case len(req.Answer) > 0 || len(req.Ns) > 0 && !ixfrAuthority(req):
			m.Rcode = dns.RcodeFormatError
		case qn.Qclass != dns.ClassINET:
			m.Rcode = dns.RcodeNotImplemented
		case qn.Qtype == dns.TypeAXFR || qn.Qtype == dns.TypeIXFR:
			// No zone transfers, full or incremental (docs/DECISIONS.md).
			m.Rcode = dns.RcodeRefused
		default:
			s.answer(m, req, q, info, size)
		}
	}
	if opt != nil {
		m.Extra = append(m.Extra, opt)
	}
	if size > zones.MaxAnswer {
		// TCP (or a client's 64 KiB UDP buffer): cut to what every
		// resolver accepts, keeping the nearest records whole; no TC, as
		// no transport carries more. Counted with the cut lists.
		m.Compress = true
		if zones.Fit(m, zones.MaxAnswer) {
			info.ListCut = true
		}
	}
	tc, nAnswer, nNs := m.Truncated, len(m.Answer), len(m.Ns)
	m.Truncate(size)
	if !tc && len(m.Answer) == nAnswer && len(m.Ns) == nNs {
		// Only additional records (SRV targets' AAAA) were left out: the
		// answer is whole, so no retry over TCP is due (RFC 2181 §9).
		m.Truncated = false
	}
	// Always compress (Truncate turns it off for replies that fit without):
	// smaller replies, and the cached path relies on owner names pointing
	// at the question.
	m.Compress = true
	if q.Transport == TCP {
		// Over TCP an answer that does not fit is cut to the nearest
		// machines that do; there is nowhere better to retry.
		m.Truncated = false
	}
	if tsig != nil {
		// Last in the additional section (RFC 8945 §5.1). Over UDP a
		// BADKEY reply that does not fit (long key and algorithm names
		// without EDNS) goes without it, with TC: TCP has room.
		m.Extra = append(m.Extra, tsig)
		if q.Transport == UDP && m.Len() > size {
			m.Extra = m.Extra[:len(m.Extra)-1]
			m.Truncated = true
		}
	}
	return m
}

// ixfrAuthority reports whether req is an IXFR query whose authority
// section holds only the client's SOA, as RFC 1995 §3 has clients send it:
// such a query is well formed (and refused), not FORMERR.
func ixfrAuthority(req *dns.Msg) bool {
	if req.Question[0].Qtype != dns.TypeIXFR {
		return false
	}
	for _, rr := range req.Ns {
		if rr.Header().Rrtype != dns.TypeSOA {
			return false
		}
	}
	return true
}

// badKey answers a TSIG-signed query. meshdns holds no TSIG keys, so every
// key is unknown: RFC 8945 §5.2.2 asks for NOTAUTH with an unsigned TSIG
// record carrying error BADKEY, and §5.3.2 for an empty MAC. The record
// echoes the key name, algorithm, time signed, fudge and original ID of
// the query's TSIG, as NSD does. A TSIG that is not the last record, a
// second one, or one without RDATA is FORMERR (§5.1). A query without
// TSIG gets nil and success.
func badKey(req *dns.Msg) (*dns.TSIG, int) {
	var in *dns.TSIG
	for i, rr := range req.Extra {
		if t, ok := rr.(*dns.TSIG); ok {
			if i != len(req.Extra)-1 {
				return nil, dns.RcodeFormatError
			}
			in = t
		}
	}
	if in == nil {
		return nil, dns.RcodeSuccess
	}
	if in.Algorithm == "" || !dns.IsFqdn(in.Algorithm) {
		// No RDATA (miekg/dns unpacks an empty one as zero values): not a
		// TSIG record we could echo.
		return nil, dns.RcodeFormatError
	}
	return &dns.TSIG{
		Hdr:        dns.RR_Header{Name: in.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  in.Algorithm,
		TimeSigned: in.TimeSigned,
		Fudge:      in.Fudge,
		OrigId:     in.OrigId,
		Error:      dns.RcodeBadKey,
	}, dns.RcodeNotAuth
}

// answer fills in the answer to one IN-class question, for a reply of at
// most size bytes.
func (s *Server) answer(m *dns.Msg, req *dns.Msg, q Query, info *QueryInfo, size int) {
	cfg := s.cfg.Load()
	qn := req.Question[0]
	snap := s.store.Snapshot()
	if snap == nil {
		// Never NXDOMAIN from an empty index, and no org to check a
		// forwarding asker against: we do not know yet.
		m.Rcode = dns.RcodeServerFailure
		return
	}
	asker, ok := identify(snap, q.Src, q.Dst, cfg.DefaultOrg)
	if !ok {
		// Nothing for askers outside every org: no .internal data, and
		// no open resolver.
		m.Rcode = dns.RcodeRefused
		return
	}
	info.Org = asker.Org.Name
	if !zones.InZone(qn.Name) {
		s.forward(m, req, cfg, info)
		return
	}
	zc := cfg.Zones
	zc.ReplySize = size
	res := zones.Answer(snap, asker, qn, zc)
	m.Authoritative = res.InZone
	m.Rcode = res.Rcode
	m.Answer = res.Answer
	m.Ns = res.Ns
	m.Extra = append(m.Extra, res.Extra...)
	info.FailOpen = res.FailOpen
	info.ListCut = res.ListCut
}

// forward answers a name outside our zones from the upstream resolvers, or
// REFUSED when there are none.
func (s *Server) forward(m *dns.Msg, req *dns.Msg, cfg *Config, info *QueryInfo) {
	if cfg.Forwarder == nil {
		m.Rcode = dns.RcodeRefused
		return
	}
	info.Forwarded = true
	m.RecursionAvailable = true
	up := new(dns.Msg)
	up.Id = req.Id
	up.RecursionDesired = true
	up.CheckingDisabled = req.CheckingDisabled
	up.Question = req.Question
	if opt := req.IsEdns0(); opt != nil {
		// Carry the client's DNSSEC OK bit, and ask for our size.
		up.SetEdns0(cfg.UDPSize, opt.Do())
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ForwardTimeout)
	defer cancel()
	r, err := cfg.Forwarder.Forward(ctx, info.Org, up)
	if err != nil || r == nil {
		s.log.Debug("forwarding failed; answering SERVFAIL", zap.String("name", req.Question[0].Name), zap.Error(err))
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.Rcode = r.Rcode
	m.AuthenticatedData = r.AuthenticatedData
	m.Answer, m.Ns = r.Answer, r.Ns
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
}
