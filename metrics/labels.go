package metrics

import "github.com/miekg/dns"

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
	dns.RcodeBadVers,
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
	return dns.RcodeToString[rcodeLabels[i]]
}
