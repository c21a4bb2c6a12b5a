package metrics

import (
	"strings"

	"github.com/miekg/dns"
)

// qtypeLabels are the query types counted by name; everything else is
// "other". The last index is "other".
var qtypeLabels = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypeSOA, dns.TypeNS,
	dns.TypeCNAME, dns.TypePTR, dns.TypeMX, dns.TypeANY, dns.TypeHTTPS,
	dns.TypeSVCB, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeNAPTR,
}

// rcodeLabels are the response codes counted by name (every one meshdns
// itself sends, and those an upstream commonly does); the rest are "other".
var rcodeLabels = []int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure,
	dns.RcodeNameError, dns.RcodeNotImplemented, dns.RcodeRefused,
	dns.RcodeBadVers, dns.RcodeNotAuth,
}

const otherLabel = "other"

func qtypeIndex(t uint16) int {
	for i, q := range qtypeLabels {
		if q == t {
			return i
		}
	}
	return len(qtypeLabels)
}

func qtypeName(i int) string {
	if i == len(qtypeLabels) {
		return otherLabel
	}
	return dns.TypeToString[qtypeLabels[i]]
}

func rcodeIndex(rc int) int {
	for i, r := range rcodeLabels {
		if r == rc {
			return i
		}
	}
	return len(rcodeLabels)
}

func rcodeName(i int) string {
	if i == len(rcodeLabels) {
		return otherLabel
	}
	if rc := rcodeLabels[i]; rc == dns.RcodeBadVers {
		// 16 is BADVERS as a message's rcode (RFC 6891: it needs the
		// OPT's extended rcode bits, and every reply carrying it has an
		// OPT) and BADSIG only as a TSIG record's error field (RFC 8945),
		// which is never a message's rcode. miekg/dns names 16 BADSIG.
		return "BADVERS"
	}
	return dns.RcodeToString[rcodeLabels[i]]
}

// listLabels are the TXT lists whose cut answers are counted by name, the
// "list" label: the name's first label, after "all." for the all. forms.
// After them, by query type rather than name, the answers cut to
// zones.MaxAnswer whole records: AAAA (nearest kept) and SRV.
var listLabels = []string{"_apps", "_peer", "_instances", "vms", "regions", "checks", "aaaa", "srv"}

// nameLists is how many of listLabels are list names; the rest are types.
const nameLists = 6

// cutIndex is the index in listLabels of a cut answer to name of type
// qtype: AAAA and SRV answers by type, TXT lists by name.
func cutIndex(name string, qtype uint16) int {
	switch qtype {
	case dns.TypeAAAA:
		return nameLists
	case dns.TypeSRV:
		return nameLists + 1
	}
	return listIndex(name)
}

// listIndex is the index in listLabels of the list name names (a question
// name such as "all._instances.internal."), len(listLabels) for "other".
// It allocates nothing.
func listIndex(name string) int {
	first := func(n string) (string, string) {
		if i := strings.IndexByte(n, '.'); i >= 0 {
			return n[:i], n[i+1:]
		}
		return n, ""
	}
	l, rest := first(name)
	if strings.EqualFold(l, "all") {
		l, _ = first(rest)
	}
	for i, want := range listLabels[:nameLists] {
		if strings.EqualFold(l, want) {
			return i
		}
	}
	return len(listLabels)
}

func listName(i int) string {
	if i == len(listLabels) {
		return otherLabel
	}
	return listLabels[i]
}
