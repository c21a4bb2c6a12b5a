package dnsserver

import "github.com/miekg/dns"

// edns works out the reply's OPT record and size limit (RFC 6891). rcode
// is BADVERS for an EDNS version above 0 and FORMERR for a malformed
// COOKIE option (RFC 7873) or a malformed OPT (two of them, or one not
// owned by the root: RFC 6891 §6.1.1), else success. Of the options the client sent
// only COOKIE is answered (cookie.go); the others are never echoed, as we
// implement none of them.
func (s *Server) edns(req *dns.Msg, q Query) (opt *dns.OPT, size int, rcode int) {
	size = dns.MinMsgSize
	if q.Transport == TCP {
		size = maxTCPSize
	}
	in, nOPT := req.IsEdns0(), 0
	if in == nil {
		return nil, size, dns.RcodeSuccess
	}
	ours := s.cfg.Load().UDPSize
	opt = new(dns.OPT)
	opt.Hdr.Name = "."
	opt.Hdr.Rrtype = dns.TypeOPT
	opt.SetUDPSize(ours)
	if in.Do() {
		opt.SetDo()
	}
	for _, rr := range req.Extra {
		if h := rr.Header(); h.Rrtype == dns.TypeOPT {
			nOPT++
			if h.Name != "." {
				nOPT = 2 // an OPT owned by another name is as bad as a second one
			}
		}
	}
	if nOPT > 1 {
		// RFC 6891 §6.1.1: more than one OPT, or one whose owner is not
		// the root, is FORMERR. The query had an OPT, so the reply has
		// ours (§7), without any option.
		return opt, size, dns.RcodeFormatError
	}
	if in.Version() != 0 {
		return opt, size, dns.RcodeBadVers
	}
	cookie, ok := s.ednsCookie(in, q.Src)
	if !ok {
		return opt, size, dns.RcodeFormatError
	}
	if cookie != nil {
		opt.Option = append(opt.Option, cookie)
	}
	if q.Transport == UDP {
		size = udpReplySize(in.UDPSize(), ours)
	}
	return opt, size, dns.RcodeSuccess
}

// udpReplySize is the most a UDP reply may carry for a client that
// advertised an EDNS size of client, with ours the size we advertise: the
// lower bound of the size class it falls in (ednsBucket).
func udpReplySize(client, ours uint16) int {
	return ednsBucket(int(min(max(client, dns.MinMsgSize), ours)))
}

// ednsBucket rounds a reply size limit down to one of a few classes: 512,
// 1232 (DNS Flag Day 2020), 4096 and 65535. The answer cache keeps one
// reply per class instead of one per size a client may advertise, so a
// client sweeping sizes cannot multiply its entries, and a reply built for
// the class's lower bound fits every size in the class.
func ednsBucket(size int) int {
	switch {
	case size >= 65535:
		return 65535
	case size >= 4096:
		return 4096
	case size >= 1232:
		return 1232
	}
	return dns.MinMsgSize
}
