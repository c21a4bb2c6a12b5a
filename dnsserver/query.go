package dnsserver

import "encoding/binary"

// wireQuery is what the fast path reads from a query packet without
// unpacking it into a dns.Msg: the header fields it must echo, the question
// (name lowercased into a caller's buffer), and the EDNS(0) OPT record.
type wireQuery struct {
	id      uint16
	flags   uint16
	qEnd    int // offset just past the question's QNAME
	qtype   uint16
	qclass  uint16
	hasOPT  bool
	udpSize uint16
	version uint8
	do      bool
	// cookieOff and cookieLen locate the COOKIE option's data (RFC 7873),
	// cookieLen 0 when there is none; cookieBad marks a malformed one or
	// more than one, which the general path answers FORMERR.
	cookieOff, cookieLen int
	cookieBad            bool
	nameLen              int // length of the lowered wire name
}

// parseQuery reads a plain query: one question, no answer or authority
// records, at most one additional record which must be an OPT. The QNAME
// must use no compression. Anything else returns false and goes to the
// general path, which handles (and rejects) it properly.
func parseQuery(raw []byte, lower *[255]byte) (q wireQuery, ok bool) {
	if len(raw) < 17 {
		return q, false
	}
	q.id = binary.BigEndian.Uint16(raw[0:2])
	q.flags = binary.BigEndian.Uint16(raw[2:4])
	if binary.BigEndian.Uint16(raw[4:6]) != 1 || binary.BigEndian.Uint16(raw[6:8]) != 0 ||
		binary.BigEndian.Uint16(raw[8:10]) != 0 {
		return q, false
	}
	arcount := binary.BigEndian.Uint16(raw[10:12])
	if arcount > 1 {
		return q, false
	}
	off := 12
	n := 0
	for {
		if off >= len(raw) {
			return q, false
		}
		l := int(raw[off])
		if l == 0 {
			lower[n] = 0
			n++
			off++
			break
		}
		if l > 63 || off+1+l > len(raw) || n+1+l+1 > 255 {
			return q, false
		}
		lower[n] = byte(l)
		for i := 0; i < l; i++ {
			c := raw[off+1+i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[n+1+i] = c
		}
		n += 1 + l
		off += 1 + l
	}
	q.qEnd = off
	q.nameLen = n
	if off+4 > len(raw) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(raw[off:])
	q.qclass = binary.BigEndian.Uint16(raw[off+2:])
	off += 4
	if arcount == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = ext-rcode,
		// version, flags; then RDLENGTH and options (ignored).
		if off+11 > len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != 41 {
			return q, false
		}
		q.hasOPT = true
		q.udpSize = binary.BigEndian.Uint16(raw[off+3:])
		q.version = raw[off+6]
		q.do = raw[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(raw[off+9:]))
		off += 11
		if off+rdlen != len(raw) {
			return q, false
		}
		// Options other than COOKIE are ignored, but they must be well
		// formed, as the general path would insist.
		for o := off; o < off+rdlen; {
			if o+4 > off+rdlen {
				return q, false
			}
			code, l := binary.BigEndian.Uint16(raw[o:]), int(binary.BigEndian.Uint16(raw[o+2:]))
			if o+4+l > off+rdlen {
				return q, false
			}
			if code == optCookie {
				q.cookieBad = q.cookieBad || q.cookieLen != 0 || !cookieLenOK(l)
				q.cookieOff, q.cookieLen = o+4, l
			}
			o += 4 + l
		}
		off += rdlen
	}
	if off != len(raw) {
		return q, false
	}
	return q, true
}
