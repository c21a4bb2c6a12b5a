package zones

import "github.com/miekg/dns"

// MaxAnswer is the most bytes an answer takes, over TCP or UDP: the
// longest list text (MaxListText), and the wire size Fit cuts every other
// reply to. TCP allows 65,535, but not every resolver takes that much:
// Knot Resolver 5.6 accepts at most 65,533 (its buffer counts the 2-byte
// length prefix) and then SERVFAILs the name and backs off the server for
// a second or two. 64,000 leaves room below every known limit for the
// header, question and OPT record.
const MaxAnswer = 64000

// Fit cuts m, keeping whole records, until its compressed wire form takes
// at most limit bytes: records are kept in order, answer first, then
// authority, then additional (the AAAA of SRV targets), so additional
// records go first and answer records are cut from the end. Answers are
// ordered best first (AAAA nearest first, SRV by priority), so what stays
// is the nearest. The OPT record always stays; the first answer record
// too: a single record is never cut away (a TXT list is cut inside its
// text by capList instead). m's TC bit and Compress setting are left as
// they were; a message with a TSIG record is left alone (dns.Msg.Truncate's
// rule: dnsserver adds TSIG after the cut). It is one pass over the records
// (miekg's Truncate), and reports whether it removed anything.
func Fit(m *dns.Msg, limit int) (cut bool) {
	answer := m.Answer
	na, nn, ne := len(m.Answer), len(m.Ns), len(m.Extra)
	tc, compress := m.Truncated, m.Compress
	m.Truncate(limit)
	m.Truncated, m.Compress = tc, compress
	if na > 0 && len(m.Answer) == 0 {
		// The first record alone is over the limit: keep it, and
		// nothing else but the OPT.
		m.Answer, m.Ns = answer[:1], nil
		var opt []dns.RR
		for _, rr := range m.Extra {
			if rr.Header().Rrtype == dns.TypeOPT {
				opt = append(opt, rr)
			}
		}
		m.Extra = opt
	}
	return len(m.Answer) != na || len(m.Ns) != nn || len(m.Extra) != ne
}
