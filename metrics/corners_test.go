package metrics

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
)

// Rcode 16 is BADVERS on the wire (it needs the OPT's extended rcode);
// BADSIG is only ever a TSIG record's error. NOTAUTH (TSIG BADKEY replies)
// has its own label.
func TestRcodeLabelsBadVersAndNotAuth(t *testing.T) {
	m := New()
	obs := m.Queries()
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeBadVers, Transport: dnsserver.UDP, Org: "acme"})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeBadVers, Transport: dnsserver.TCP, Org: "acme"})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeNotAuth, Transport: dnsserver.UDP, Org: "acme"})
	reg := m.Registry()
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=AAAA", "rcode=BADVERS", "transport=udp")
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=AAAA", "rcode=BADVERS", "transport=tcp")
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=AAAA", "rcode=NOTAUTH", "transport=udp")
	if _, ok := metricValue(t, reg, "meshdns_dns_requests_total", "type=AAAA", "rcode=BADSIG", "transport=udp"); ok {
		t.Fatal("a BADVERS answer counted as BADSIG")
	}
}

// Cut TXT lists are counted by list, however they were served.
func TestListCutAnswersAreCounted(t *testing.T) {
	m := New()
	obs := m.Queries()
	for _, q := range []dnsserver.QueryInfo{
		{Name: "_instances.internal.", ListCut: true, Transport: dnsserver.TCP},
		{Name: "ALL._Instances.internal.", ListCut: true, Transport: dnsserver.UDP, Cached: true, Worker: 1},
		{Name: "vms.big.internal.", ListCut: true, Transport: dnsserver.UDP},
		{Name: "all.regions.big.internal.", ListCut: true, Transport: dnsserver.UDP},
		{Name: "_instances.internal.", Transport: dnsserver.TCP}, // whole
		{Name: "odd", ListCut: true},
	} {
		q.Qtype, q.Org = dns.TypeTXT, "acme"
		obs.ObserveQuery(q)
	}
	reg := m.Registry()
	wantValue(t, reg, 2, "meshdns_dns_list_answers_cut_total", "list=_instances")
	wantValue(t, reg, 1, "meshdns_dns_list_answers_cut_total", "list=vms")
	wantValue(t, reg, 1, "meshdns_dns_list_answers_cut_total", "list=regions")
	wantValue(t, reg, 0, "meshdns_dns_list_answers_cut_total", "list=checks")
	wantValue(t, reg, 1, "meshdns_dns_list_answers_cut_total", "list=other")
}

// AAAA and SRV answers cut to 64,000 bytes are counted by type, whatever
// their name; a TXT list named like a type is still a list name.
func TestRecordCutAnswersAreCountedByType(t *testing.T) {
	m := New()
	obs := m.Queries()
	for _, q := range []dnsserver.QueryInfo{
		{Name: "big.internal.", Qtype: dns.TypeAAAA, ListCut: true, Transport: dnsserver.TCP},
		{Name: "vms.internal.", Qtype: dns.TypeAAAA, ListCut: true, Transport: dnsserver.UDP},
		{Name: "_http._tcp.big.internal.", Qtype: dns.TypeSRV, ListCut: true, Transport: dnsserver.TCP},
		{Name: "big.internal.", Qtype: dns.TypeAAAA, Transport: dnsserver.TCP}, // whole
		{Name: "aaaa.internal.", Qtype: dns.TypeTXT, ListCut: true},
	} {
		q.Org = "acme"
		obs.ObserveQuery(q)
	}
	reg := m.Registry()
	wantValue(t, reg, 2, "meshdns_dns_list_answers_cut_total", "list=aaaa")
	wantValue(t, reg, 1, "meshdns_dns_list_answers_cut_total", "list=srv")
	wantValue(t, reg, 0, "meshdns_dns_list_answers_cut_total", "list=vms")
	wantValue(t, reg, 1, "meshdns_dns_list_answers_cut_total", "list=other")
}

func TestListIndexAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { listIndex("all._instances.internal.") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
