package zones

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// bigAppRegistry is one org with an asker in syd and an app of n started
// machines over seven regions, each serving http over TCP.
func bigAppRegistry(n int) string {
	regions := []string{"ams", "iad", "syd", "nrt", "gru", "fra", "zzz"}
	var b strings.Builder
	b.WriteString("orgs/acme {\"network\":\"fdaa:0:18::/48\"}\n")
	b.WriteString("machines/acme/asker/0001 {\"region\":\"syd\",\"ip\":\"fdaa:0:18:1::2\",\"state\":\"started\"}\n")
	for i := range n {
		fmt.Fprintf(&b, "machines/acme/big/%06x {\"region\":%q,\"ip\":\"fdaa:0:18:b::%x\",\"state\":\"started\",\"services\":[{\"name\":\"http\",\"protocol\":\"tcp\",\"port\":80}]}\n",
			i+1, regions[i%len(regions)], i+1)
	}
	return b.String()
}

// tcpReply is the reply dnsserver builds over TCP: question, zones'
// answer and additional records, an OPT record, compressed.
func tcpReply(q dns.Question, res Result) *dns.Msg {
	m := new(dns.Msg)
	m.Response, m.Authoritative, m.Compress = true, true, true
	m.Question = []dns.Question{q}
	m.Answer, m.Ns = res.Answer, res.Ns
	m.Extra = append(append([]dns.RR(nil), res.Extra...), &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}})
	return m
}

// An app of 5,000 machines: over TCP its AAAA and SRV answers are cut to
// MaxAnswer bytes on the wire, keeping whole records, the nearest (AAAA)
// or best (SRV) first, as many as fit, and the OPT record.
func TestFitCutsBigAnswersToMaxAnswer(t *testing.T) {
	snap := mustSnap(t, bigAppRegistry(5000))
	a := askerAt(t, snap, "fdaa:0:18:1::2")
	for _, tc := range []struct {
		name  string
		qtype uint16
	}{
		{"big.internal.", dns.TypeAAAA},
		{"global.big.internal.", dns.TypeAAAA},
		{"_http._tcp.big.internal.", dns.TypeSRV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := question(tc.name, tc.qtype)
			all := Answer(snap, a, q, Config{})
			res := Answer(snap, a, q, Config{ReplySize: dns.MaxMsgSize})
			if len(all.Answer) < 2000 {
				t.Fatalf("want a big answer, got %d records", len(all.Answer))
			}
			m := tcpReply(q, res)
			if !Fit(m, MaxAnswer) {
				t.Fatalf("nothing cut from a %d-record answer", len(res.Answer))
			}
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) > MaxAnswer {
				t.Fatalf("reply is %d bytes, over %d", len(wire), MaxAnswer)
			}
			if opt := m.IsEdns0(); opt == nil {
				t.Fatal("the OPT record was cut")
			}
			// Kept: the first records of the whole answer, in order.
			for i, rr := range m.Answer {
				if rr.String() != all.Answer[i].String() {
					t.Fatalf("record %d is %v, want %v (the nearest first)", i, rr, all.Answer[i])
				}
			}
			// As many as fit: one more answer record would not.
			n, extra := len(m.Answer), len(m.Extra)
			more := tcpReply(q, Result{Answer: all.Answer[:n+1]})
			more.Extra = nil
			if more.Len() <= MaxAnswer && extra <= 1 {
				t.Fatalf("kept %d records, but %d fit in %d bytes", n, n+1, MaxAnswer)
			}
			if tc.qtype == dns.TypeAAAA && (n < 1500 || extra != 1) {
				t.Fatalf("kept %d AAAA and %d additional records", n, extra)
			}
			t.Logf("%s %s: %d of %d records, %d additional, %d bytes", tc.name, dns.TypeToString[tc.qtype], n, len(all.Answer), extra-1, len(wire))
		})
	}
}

// Fit leaves a reply that fits alone, cuts to small limits too, and never
// cuts the first record (a TXT list over MaxAnswer on the wire, cut inside
// its text, stays).
func TestFitKeepsWhatFitsAndTheFirstRecord(t *testing.T) {
	snap := mustSnap(t, bigAppRegistry(20))
	a := askerAt(t, snap, "fdaa:0:18:1::2")
	q := question("big.internal.", dns.TypeAAAA)
	m := tcpReply(q, Answer(snap, a, q, Config{}))
	n := len(m.Answer)
	if Fit(m, MaxAnswer) || len(m.Answer) != n || len(m.Extra) != 1 {
		t.Fatalf("a %d-record reply that fits was cut to %d", n, len(m.Answer))
	}
	if !Fit(m, 560) || len(m.Answer) >= n || m.IsEdns0() == nil || m.Len() > 560 {
		t.Fatalf("cut to 560 bytes: %d of %d records in %d bytes, OPT %v; want the OPT and the records that fit", len(m.Answer), n, m.Len(), m.IsEdns0() != nil)
	}
	long := strings.Repeat("x,", MaxListText)
	txt := tcpReply(question("vms.big.internal.", dns.TypeTXT), Result{Answer: txtRecord("vms.big.internal.", 5, capList(long, ','))})
	Fit(txt, MaxAnswer)
	if len(txt.Answer) != 1 || txt.IsEdns0() == nil {
		t.Fatalf("a cut TXT list's reply kept %d answer records, OPT %v; want the list and the OPT", len(txt.Answer), txt.IsEdns0() != nil)
	}
	if l := txt.Len(); l > 65533-2 {
		t.Fatalf("a cut TXT list's reply takes %d bytes; Knot Resolver takes at most 65,531 plus the length prefix", l)
	}
}

// BenchmarkFit is the cost of cutting a 5,000-machine app's TCP AAAA answer
// (2,341 records bounded by ReplySize) to MaxAnswer.
func BenchmarkFit(b *testing.B) {
	snap := mustSnap(b, bigAppRegistry(5000))
	a := askerAt(b, snap, "fdaa:0:18:1::2")
	q := question("big.internal.", dns.TypeAAAA)
	res := Answer(snap, a, q, Config{ReplySize: dns.MaxMsgSize})
	b.ReportAllocs()
	for b.Loop() {
		if !Fit(tcpReply(q, res), MaxAnswer) {
			b.Fatal("not cut")
		}
	}
}
