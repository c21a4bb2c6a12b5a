package ops

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/internal/dnstest"
)

// upstream is a test resolver on 127.0.0.1, UDP and TCP on one port. It
// answers A questions with 192.0.2.1 (TTL 300), except big.example. TXT,
// which is truncated over UDP and complete over TCP.
type upstream struct {
	addr     string
	udp, tcp atomic.Int64 // queries seen
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	handler := func(count *atomic.Int64, proto string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			count.Add(1)
			r := new(dns.Msg)
			r.SetReply(req)
			r.RecursionAvailable = true
			q := req.Question[0]
			switch {
			case q.Qtype == dns.TypeA:
				rr, _ := dns.NewRR(q.Name + " 300 IN A 192.0.2.1")
				r.Answer = append(r.Answer, rr)
			case q.Qtype == dns.TypeTXT && q.Name == "big.example." && proto == "udp":
				r.Truncated = true
			case q.Qtype == dns.TypeTXT && q.Name == "big.example.":
				for i := range 30 {
					rr, _ := dns.NewRR(q.Name + ` 300 IN TXT "a long enough text record number ` + strconv.Itoa(i) + `"`)
					r.Answer = append(r.Answer, rr)
				}
			}
			_ = w.WriteMsg(r)
		}
	}
	u.addr = dnstest.Serve(t, handler(&u.udp, "udp"), handler(&u.tcp, "tcp"))
	return u
}

// deadUpstream is a bound UDP socket that never answers.
func deadUpstream(t *testing.T) string { return dnstest.Dead(t) }
