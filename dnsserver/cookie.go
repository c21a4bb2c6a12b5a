package dnsserver

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"net/netip"

	"github.com/miekg/dns"
)

// DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018). A
// client that sends a client cookie gets it back with a server cookie;
// when it later sends that server cookie, the query provably comes from the
// address it claims, as nobody else saw the reply. Such verified queries
// are rate limited in buckets of their own (ratelimit.go), which spoofed
// traffic cannot drain.
//
// The server cookie is version 1 | 3 reserved bytes | a timestamp in
// seconds | SipHash-2-4 over client cookie | version | reserved |
// timestamp | client IP, keyed with a secret made when the server starts.
// A server cookie is accepted up to an hour old (and up to 5 minutes in the
// future); one older than half an hour is replaced in the reply.

const (
	optCookie        = dns.EDNS0COOKIE
	clientCookieLen  = 8
	serverCookieLen  = 16 // RFC 9018's
	replyCookieLen   = clientCookieLen + serverCookieLen
	cookieMaxAge     = 3600
	cookieRenewAge   = 1800
	cookieMaxAhead   = 300
	cookieVersion    = 1
	minServerCookie  = 8
	maxServerCookie  = 32
	maxCookieOptData = clientCookieLen + maxServerCookie
)

// cookieSecret is the SipHash key of the server cookies.
type cookieSecret struct{ k0, k1 uint64 }

func newCookieSecret() cookieSecret {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dnsserver: no randomness for the cookie secret: " + err.Error())
	}
	return cookieSecretFrom(b)
}

func cookieSecretFrom(b [16]byte) cookieSecret {
	return cookieSecret{binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])}
}

// cookieLenOK says whether a COOKIE option of n bytes is well formed: a
// client cookie alone, or one followed by an 8 to 32 byte server cookie.
func cookieLenOK(n int) bool {
	return n == clientCookieLen || n >= clientCookieLen+minServerCookie && n <= maxCookieOptData
}

// serverCookie writes the 16-byte server cookie for client cookie cc, the
// client's address and timestamp ts into dst.
func (k cookieSecret) serverCookie(dst []byte, cc []byte, src netip.Addr, ts uint32) {
	var buf [8 + 4 + 4 + 16]byte
	copy(buf[0:8], cc)
	buf[8] = cookieVersion
	binary.BigEndian.PutUint32(buf[12:16], ts)
	n := 16
	src = src.Unmap()
	if src.Is4() {
		a := src.As4()
		n += copy(buf[16:], a[:])
	} else {
		a := src.As16()
		n += copy(buf[16:], a[:])
	}
	copy(dst[0:8], buf[8:16])
	binary.LittleEndian.PutUint64(dst[8:16], siphash24(k.k0, k.k1, buf[:n]))
}

// check reports whether the COOKIE option data opt (well formed) carries a
// server cookie of ours for src that is still valid at now, and whether it
// is young enough to be sent back as it is.
func (k cookieSecret) check(opt []byte, src netip.Addr, now uint32) (valid, fresh bool) {
	if len(opt) != replyCookieLen || opt[8] != cookieVersion || opt[9]|opt[10]|opt[11] != 0 {
		return false, false
	}
	ts := binary.BigEndian.Uint32(opt[12:16])
	age := int32(now - ts) // serial number arithmetic (RFC 1982), as RFC 9018 asks
	if age > cookieMaxAge || age < -cookieMaxAhead {
		return false, false
	}
	var want [serverCookieLen]byte
	k.serverCookie(want[:], opt[:clientCookieLen], src, ts)
	if binary.LittleEndian.Uint64(want[8:16]) != binary.LittleEndian.Uint64(opt[16:24]) {
		return false, false
	}
	return true, age <= cookieRenewAge
}

// reply writes the reply's COOKIE data (24 bytes) into dst: the client
// cookie, then the server cookie it sent if fresh, else a new one.
func (k cookieSecret) reply(dst, opt []byte, src netip.Addr, now uint32, fresh bool) {
	copy(dst[0:8], opt[0:8])
	if fresh {
		copy(dst[8:24], opt[8:24])
		return
	}
	k.serverCookie(dst[8:24], opt[0:8], src, now)
}

// cookieNow is the cookies' clock, in seconds.
func (s *Server) cookieNow() uint32 { return uint32(s.clock.now() / 1e9) }

// ednsCookie answers the COOKIE option of a parsed query: the option for
// the reply, or ok=false when the option is malformed (FORMERR).
func (s *Server) ednsCookie(in *dns.OPT, src netip.Addr) (reply *dns.EDNS0_COOKIE, ok bool) {
	var data []byte
	for _, o := range in.Option {
		c, isCookie := o.(*dns.EDNS0_COOKIE)
		if !isCookie {
			continue
		}
		if data != nil {
			return nil, false // more than one COOKIE option
		}
		b, err := hex.DecodeString(c.Cookie)
		if err != nil || !cookieLenOK(len(b)) {
			return nil, false
		}
		data = b
	}
	if data == nil {
		return nil, true
	}
	now := s.cookieNow()
	_, fresh := s.cookies.check(data, src, now)
	var out [replyCookieLen]byte
	s.cookies.reply(out[:], data, src, now, fresh)
	return &dns.EDNS0_COOKIE{Code: optCookie, Cookie: hex.EncodeToString(out[:])}, true
}

// verifiedSource reports whether a raw query carries a valid server cookie
// of ours for src; for the paths that have not parsed the query on the wire.
func (s *Server) verifiedSource(raw []byte, src netip.Addr) bool {
	var lower [255]byte
	wq, ok := parseQuery(raw, &lower)
	if !ok || wq.cookieLen != replyCookieLen || wq.cookieBad {
		return false
	}
	valid, _ := s.cookies.check(raw[wq.cookieOff:wq.cookieOff+wq.cookieLen], src, s.cookieNow())
	return valid
}

// siphash24 is SipHash-2-4 of p under the key (k0, k1).
func siphash24(k0, k1 uint64, p []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	b := uint64(len(p)) << 56
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
		p = p[8:]
	}
	for i, c := range p {
		b |= uint64(c) << (8 * i)
	}
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
