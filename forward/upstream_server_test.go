package forward_test

import (
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/internal/dnstest"
)

// testUpstream is a resolver on 127.0.0.1 (UDP and TCP on one port) that
// answers with a handler and counts what it was asked, per transport.
type testUpstream struct {
	addr string
	mu   sync.Mutex
	seen map[string]int // "udp" / "tcp" → queries
}

// handler answers one query; proto is "udp" or "tcp".
type handler func(proto string, req *dns.Msg) *dns.Msg

func startUpstream(t testing.TB, h handler) *testUpstream {
	t.Helper()
	u := &testUpstream{seen: map[string]int{}}
	serve := func(proto string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			u.mu.Lock()
			u.seen[proto]++
			u.mu.Unlock()
			if r := h(proto, req); r != nil {
				_ = w.WriteMsg(r)
			}
		}
	}
	u.addr = dnstest.Serve(t, serve("udp"), serve("tcp"))
	return u
}

func (u *testUpstream) count(proto string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[proto]
}

// deadUpstream is a bound UDP socket that reads nothing and answers
// nothing: queries to it time out (no ICMP "port unreachable" either).
func deadUpstream(t *testing.T) string { return dnstest.Dead(t) }

// answerA answers every A question with 192.0.2.1 and the given TTL.
func answerA(ttl uint32) handler {
	return func(_ string, req *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetReply(req)
		r.RecursionAvailable = true
		q := req.Question[0]
		if q.Qtype == dns.TypeA {
			r.Answer = append(r.Answer, mustRR("%s %d IN A 192.0.2.1", q.Name, ttl))
		}
		return r
	}
}

func mustRR(format string, args ...any) dns.RR {
	rr, err := dns.NewRR(sprintf(format, args...))
	if err != nil {
		panic(err)
	}
	return rr
}
