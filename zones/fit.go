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

// Fit cuts m, keeping whole records, until its wire form (compressed as
// m.Compress says) takes at most limit bytes: first the additional records
// from the end (the AAAA of SRV targets; never the OPT or TSIG record),
// then the answer records from the end. Answers are ordered best first
// (AAAA nearest first, SRV by priority), so what stays is the nearest.
// The first answer record always stays: a single record is never cut away
// (a TXT list is cut inside its text by capList instead). Fit reports
// whether it removed anything. A message that fits costs one m.Len().
func Fit(m *dns.Msg, limit int) (cut bool) {
	if m.Len() <= limit {
		return false
	}
	var keep, extra []dns.RR // OPT and TSIG stay, at the end
	for _, rr := range m.Extra {
		switch rr.Header().Rrtype {
		case dns.TypeOPT, dns.TypeTSIG:
			keep = append(keep, rr)
		default:
			extra = append(extra, rr)
		}
	}
	withExtra := func(k int) {
		m.Extra = append(append(make([]dns.RR, 0, k+len(keep)), extra[:k]...), keep...)
	}
	// The most additional records that fit with the whole answer.
	k := largest(len(extra), func(k int) bool { withExtra(k); return m.Len() <= limit })
	withExtra(k)
	if k > 0 || m.Len() <= limit {
		return true
	}
	answer := m.Answer
	n := largest(len(answer), func(n int) bool {
		m.Answer = answer[:n]
		return n <= 1 || m.Len() <= limit
	})
	m.Answer = answer[:n]
	return true
}

// largest is the largest n in [0, max] with ok(n), for ok true up to some
// n and false after it (ok(0) is taken as true).
func largest(max int, ok func(int) bool) int {
	lo, hi := 0, max // ok(lo) holds; the answer is in [lo, hi]
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
