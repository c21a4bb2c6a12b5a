package zones

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// benchSnapshot is one org whose app web has n started machines spread
// over the built-in regions, plus a client peer in ams to ask from.
func benchSnapshot(tb testing.TB, n int) *registry.Snapshot {
	tb.Helper()
	codes := BuiltinCodes()
	var b strings.Builder
	b.WriteString(`orgs/acme {"network":"fdaa:0:18::/48"}` + "\n")
	b.WriteString(`peers/acme/client {"ip":"fdaa:0:18:ffff::1","region":"ams"}` + "\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `machines/acme/web/%014x {"region":"%s","ip":"fdaa:0:18:%x::2","state":"started","metadata":{"role":"r%d"}}`+"\n",
			uint64(i)*0x9e3779b97f4a7c15>>8, codes[i%len(codes)], i+1, i%3)
	}
	return mustSnap(tb, b.String())
}

func benchAnswer(b *testing.B, machines int, name string, qtype uint16) {
	snap := benchSnapshot(b, machines)
	a := askerAt(b, snap, "fdaa:0:18:ffff::1")
	q := question(name, qtype)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Answer(snap, a, q, Config{})
	}
}

func BenchmarkAnswerApp(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) { benchAnswer(b, n, "web.internal.", dns.TypeAAAA) })
	}
}

func BenchmarkAnswerTop3(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) { benchAnswer(b, n, "top3.nearest.of.web.internal.", dns.TypeAAAA) })
	}
}

func BenchmarkAnswerRegion(b *testing.B) {
	benchAnswer(b, 1000, "ams.web.internal.", dns.TypeAAAA)
}

func BenchmarkAnswerVMS(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) { benchAnswer(b, n, "vms.web.internal.", dns.TypeTXT) })
	}
}

func BenchmarkAnswerNXDOMAIN(b *testing.B) {
	benchAnswer(b, 1000, "nosuch.internal.", dns.TypeAAAA)
}

func BenchmarkAnswerMixedCase(b *testing.B) {
	benchAnswer(b, 10, "WeB.InTeRnAl.", dns.TypeAAAA)
}

// Reverse names: a machine's PTR, an unused address (NXDOMAIN) and an
// empty non-terminal, once the org's address index is built.
func BenchmarkAnswerPTR(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) {
			benchAnswer(b, n, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR)
		})
	}
}

func BenchmarkAnswerPTRNXDOMAIN(b *testing.B) {
	benchAnswer(b, 1000, "9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR)
}

func BenchmarkAnswerPTREmptyNonTerminal(b *testing.B) {
	benchAnswer(b, 1000, "1.0.0.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR)
}
