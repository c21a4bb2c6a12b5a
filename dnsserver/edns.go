package dnsserver

import "github.com/miekg/dns"

// edns works out the reply's OPT record and size limit (RFC 6891). It
// returns ok=false for an EDNS version above 0, which must get BADVERS.
// Options the client sent are never echoed: we implement none of them.
func (s *Server) edns(req *dns.Msg, t Transport) (opt *dns.OPT, size int, ok bool) {
	size = dns.MinMsgSize
	if t == TCP {
		size = maxTCPSize
	}
	in := req.IsEdns0()
	if in == nil {
		return nil, size, true
	}
	ours := s.cfg.Load().UDPSize
	opt = new(dns.OPT)
	opt.Hdr.Name = "."
	opt.Hdr.Rrtype = dns.TypeOPT
	opt.SetUDPSize(ours)
	if in.Do() {
		opt.SetDo()
	}
	if in.Version() != 0 {
		return opt, size, false
	}
	if t == UDP {
		size = int(min(max(in.UDPSize(), dns.MinMsgSize), ours))
	}
	return opt, size, true
}
