package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
)

// TestCacheLaneCountsEveryAnswer counts cached UDP answers from more
// readers than there are shards, at once and across several scrapes, and
// checks that every scrape shows exactly what was observed before it.
func TestCacheLaneCountsEveryAnswer(t *testing.T) {
	m := New()
	obs := m.Queries()
	reg := m.Registry()
	total := 0
	for round := 1; round <= 3; round++ {
		const readers, each = 40, 250
		var wg sync.WaitGroup
		for w := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					info := dnsserver.QueryInfo{Qtype: dns.TypeAAAA, Rcode: dns.RcodeSuccess, Transport: dnsserver.UDP,
						Org: "acme", Cached: true, Worker: w + 1, Duration: time.Microsecond}
					if i%10 == 0 {
						info.Qtype, info.Rcode, info.Truncated = dns.TypeTXT, dns.RcodeNameError, true
						info.Duration = 100 * time.Microsecond // the 156.25µs bucket
					}
					obs.ObserveQuery(info)
				}
			}()
		}
		wg.Wait()
		total += readers * each
		// A scrape while nothing is counted must be stable too.
		for range 2 {
			wantValue(t, reg, float64(total)*9/10, "meshdns_dns_requests_total", "type=AAAA", "rcode=NOERROR", "transport=udp")
			wantValue(t, reg, float64(total)/10, "meshdns_dns_requests_total", "type=TXT", "rcode=NXDOMAIN", "transport=udp")
			wantValue(t, reg, float64(total), "meshdns_cache_hits_total")
			wantValue(t, reg, float64(total)/10, "meshdns_dns_truncated_responses_total", "transport=udp")
			wantValue(t, reg, float64(total), "meshdns_dns_request_duration_seconds", "transport=udp", "source=cache")
			wantBucket(t, m, 25e-6, uint64(total)*9/10)
			wantBucket(t, m, 156.25e-6, uint64(total))
		}
	}
}

// wantBucket checks the cumulative count of the {udp, cache} latency
// bucket with upper bound le.
func wantBucket(t *testing.T, m *Metrics, le float64, want uint64) {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshdns_dns_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			if !hasLabels(s, []string{"transport=udp", "source=cache"}) {
				continue
			}
			for _, b := range s.GetHistogram().GetBucket() {
				if b.GetUpperBound() > le*0.999 && b.GetUpperBound() < le*1.001 {
					if b.GetCumulativeCount() != want {
						t.Fatalf("bucket le=%g: %d, want %d", le, b.GetCumulativeCount(), want)
					}
					return
				}
			}
		}
	}
	t.Fatalf("no {udp, cache} bucket le=%g", le)
}
