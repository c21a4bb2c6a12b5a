package forward_test

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/forward"
)

// BenchmarkForwardCacheHit is one forwarded question answered from the
// cache: the reply unpacked, its TTLs counted down, the asker's case set.
func BenchmarkForwardCacheHit(b *testing.B) {
	up := startUpstream(b, answerA(300))
	f, err := forward.New(forward.Config{Upstreams: []string{up.addr}})
	if err != nil {
		b.Fatal(err)
	}
	req := question("Example.COM.", dns.TypeA)
	if _, err := f.Forward(context.Background(), testOrg, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Forward(context.Background(), testOrg, req); err != nil {
			b.Fatal(err)
		}
	}
}
