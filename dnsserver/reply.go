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

// headerOnlyReply answers a message we could not parse with just a header:
// same id and opcode, QR set, RD copied, no sections. It is never larger
// than the request's header.
func headerOnlyReply(raw []byte, rcode int) []byte {
	out := make([]byte, 12)
	copy(out[0:2], raw[0:2])
	in := binary.BigEndian.Uint16(raw[2:4])
	const opcodeMask, rdBit = 0x7800, 0x0100
	f := uint16(1<<15) | in&opcodeMask | in&rdBit | uint16(rcode&0xF)
	binary.BigEndian.PutUint16(out[2:4], f)
	return out
}

// reply builds the answer to a parsed query.
func (s *Server) reply(req *dns.Msg, q Query) (*dns.Msg, QueryInfo) {
	info := QueryInfo{Transport: q.Transport, Src: q.Src}
	if len(req.Question) > 0 {
		info.Name, info.Qtype = req.Question[0].Name, req.Question[0].Qtype
	}
	m := s.build(req, q, &info)
	info.Rcode, info.Truncated = m.Rcode, m.Truncated
	return m, info
}

func (s *Server) build(req *dns.Msg, q Query, info *QueryInfo) *dns.Msg {
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	m.Question = req.Question
	opt, size, rcode := s.edns(req, q)
	if rcode != dns.RcodeSuccess {
		// EDNS version we do not speak (BADVERS) or a malformed COOKIE
		// option (FORMERR): our OPT, no answer.
		m.Rcode = rcode
		m.Extra = []dns.RR{opt}
		return m
	}
	qn := req.Question[0]
	switch {
	case len(req.Answer) > 0 || len(req.Ns) > 0:
		m.Rcode = dns.RcodeFormatError
	case qn.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeNotImplemented
	case qn.Qtype == dns.TypeAXFR || qn.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
	default:
		s.answer(m, req, q, info, size)
	}
	if opt != nil {
		m.Extra = append(m.Extra, opt)
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
	return m
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
