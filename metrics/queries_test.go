package metrics

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
)

func TestQueriesAreCountedByTypeRcodeAndTransport(t *testing.T) {
	m := New()
	obs := m.Queries()
	for range 3 {
		obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", Duration: time.Millisecond})
	}
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", Cached: true})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Transport: dnsserver.TCP, Org: "acme", Truncated: false})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: 65280, Rcode: dns.RcodeRefused, Transport: dnsserver.UDP})                     // private type, no org
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeA, Rcode: 11, Transport: dnsserver.UDP, Org: "acme", Forwarded: true}) // odd upstream rcode
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", Forwarded: true, Truncated: true})

	reg := m.Registry()
	wantValue(t, reg, 4, "meshdns_dns_requests_total", "type=AAAA", "rcode=NOERROR", "transport=udp")
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=TXT", "rcode=NXDOMAIN", "transport=tcp")
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=other", "rcode=REFUSED", "transport=udp")
	wantValue(t, reg, 1, "meshdns_dns_requests_total", "type=A", "rcode=other", "transport=udp")
	wantValue(t, reg, 1, "meshdns_cache_hits_total")
	wantValue(t, reg, 4, "meshdns_cache_misses_total") // 3 AAAA + TXT; not refused, not forwarded
	wantValue(t, reg, 1, "meshdns_dns_forwarded_requests_total", "rcode=NOERROR")
	wantValue(t, reg, 1, "meshdns_dns_forwarded_requests_total", "rcode=other")
	wantValue(t, reg, 3, "meshdns_dns_request_duration_seconds", "transport=udp", "source=zone")
	wantValue(t, reg, 1, "meshdns_dns_request_duration_seconds", "transport=udp", "source=cache")
	wantValue(t, reg, 2, "meshdns_dns_request_duration_seconds", "transport=udp", "source=forward")
	wantValue(t, reg, 1, "meshdns_dns_truncated_responses_total", "transport=udp")
}

// Every label value comes from a fixed set, whatever the queries are.
func TestQueryLabelsAreBounded(t *testing.T) {
	m := New()
	for qt := range 1 << 16 {
		m.Queries().ObserveQuery(dnsserver.QueryInfo{Qtype: uint16(qt), Rcode: qt % 4096, Transport: dnsserver.Transport(qt % 2)})
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meshdns_dns_requests_total" {
			max := (len(qtypeLabels) + 1) * (len(rcodeLabels) + 1) * 2
			if n := len(mf.GetMetric()); n > max {
				t.Errorf("%d series, want at most %d", n, max)
			}
		}
	}
}

func BenchmarkObserveQuery(b *testing.B) {
	obs := New().Queries()
	q := dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", Duration: 20 * time.Microsecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs.ObserveQuery(q)
		}
	})
}

// Fail-open answers (SPEC §5) are counted however they were served:
// computed, from a UDP worker's cache, over TCP.
func TestFailOpenAnswersAreCounted(t *testing.T) {
	m := New()
	obs := m.Queries()
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", FailOpen: true})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme", FailOpen: true, Cached: true, Worker: 1})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeSRV, Rcode: dns.RcodeSuccess, Transport: dnsserver.TCP, Org: "acme", FailOpen: true})
	obs.ObserveQuery(dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP, Org: "acme"})
	wantValue(t, m.Registry(), 3, "meshdns_dns_fail_open_answers_total")
}
