package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// failOpenObserver counts fail-open answers and cache hits.
type failOpenObserver struct{ failOpen, hits, misses int }

func (o *failOpenObserver) ObserveQuery(q QueryInfo) {
	if q.FailOpen {
		o.failOpen++
	}
	if q.Cached {
		o.hits++
	} else {
		o.misses++
	}
}

const healthRegistry = `orgs/acme {"network":"fdaa:0:18::/48"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}
machines/acme/api/0c01 {"region":"fra","ip":"fdaa:0:18:c::1","state":"started","checks":{"http":"passing"}}
`

func hosts(m *dns.Msg) string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.SRV:
			out = append(out, rr.Target)
		case *dns.TXT:
			out = append(out, strings.Join(rr.Txt, ""))
		}
	}
	return strings.Join(out, " ")
}

// TestCheckChangeInvalidatesCachedAnswers: a check change shows in the
// very next answer of every name it affects — the app's AAAA names, its
// SRV names and checks.<app> — through the warm cache of the UDP fast
// path, while another app's cached answer stays cached; fail-open answers
// are reported to the Observer on cache hits too.
func TestCheckChangeInvalidatesCachedAnswers(t *testing.T) {
	s := newTestServer(t, healthRegistry, "")
	obs := &failOpenObserver{}
	cfg := *s.cfg.Load()
	cfg.Observer = obs
	s.Reconfigure(cfg)
	w := s.newWorker()
	src := netip.MustParseAddr("fdaa:0:18:a7b:1::2")

	ask := func(name string, qt uint16) string {
		t.Helper()
		return hosts(answers(t, w, name, qt, src))
	}
	for range 2 { // fill, then from the cache
		if got := ask("web.internal.", dns.TypeAAAA); got != "fdaa:0:18:a7b:1::2 fdaa:0:18:a7b:1::3" {
			t.Fatalf("web: %s", got)
		}
		if got := ask("_http._tcp.web.internal.", dns.TypeSRV); got != "0a01.vm.web.internal. 0a02.vm.web.internal." {
			t.Fatalf("SRV: %s", got)
		}
		if got := ask("checks.web.internal.", dns.TypeTXT); got != "0a01 passing,0a02 passing" {
			t.Fatalf("checks: %s", got)
		}
		ask("api.internal.", dns.TypeAAAA)
	}
	if obs.hits != 4 || obs.misses != 4 {
		t.Fatalf("hits %d misses %d, want 4 and 4", obs.hits, obs.misses)
	}

	applyText(t, s.store, `machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","checks":{"http":"critical"},"services":[{"name":"http","protocol":"tcp","port":8080}]}`)
	if got := ask("web.internal.", dns.TypeAAAA); got != "fdaa:0:18:a7b:1::3" {
		t.Errorf("web after 0a01 went critical: %s", got)
	}
	if got := ask("_http._tcp.web.internal.", dns.TypeSRV); got != "0a02.vm.web.internal." {
		t.Errorf("SRV after 0a01 went critical: %s", got)
	}
	if got := ask("checks.web.internal.", dns.TypeTXT); got != "0a01 critical,0a02 passing" {
		t.Errorf("checks after 0a01 went critical: %s", got)
	}
	h := obs.hits
	ask("api.internal.", dns.TypeAAAA)
	if obs.hits != h+1 {
		t.Error("api's cached answer was dropped by a check change in web")
	}

	// Both critical: fail open, counted on the miss and on every hit.
	applyText(t, s.store, `machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"started","checks":{"http":"critical"},"services":[{"name":"http","protocol":"tcp","port":8080}]}`)
	fo := obs.failOpen
	for range 3 {
		if got := ask("web.internal.", dns.TypeAAAA); got != "fdaa:0:18:a7b:1::2 fdaa:0:18:a7b:1::3" {
			t.Errorf("web, all critical (fail open): %s", got)
		}
		ask("_http._tcp.web.internal.", dns.TypeSRV)
	}
	if obs.failOpen != fo+6 {
		t.Errorf("%d fail-open answers observed, want 6", obs.failOpen-fo)
	}
	ask("checks.web.internal.", dns.TypeTXT)
	ask("api.internal.", dns.TypeAAAA)
	if obs.failOpen != fo+6 {
		t.Errorf("answers that are not fail open were counted as such")
	}

	// --health-aware=false (a live reconfigure): every started machine, no fail open.
	cfg.Zones.IgnoreHealth = true
	s.Reconfigure(cfg)
	applyText(t, s.store, `machines/acme/web/0a02 {"region":"iad","ip":"fdaa:0:18:a7b:1::3","state":"started","checks":{"http":"passing"},"services":[{"name":"http","protocol":"tcp","port":8080}]}`)
	fo = obs.failOpen
	if got := ask("web.internal.", dns.TypeAAAA); got != "fdaa:0:18:a7b:1::2 fdaa:0:18:a7b:1::3" {
		t.Errorf("web, health ignored: %s", got)
	}
	if obs.failOpen != fo {
		t.Error("fail open counted with health ignored")
	}
}

// TestSRVTruncation: an SRV answer that does not fit the client's UDP
// size is cut to the nearest records that fit, with TC; one whose records
// fit but whose targets' AAAA do not keeps every record, as many AAAA as
// fit, and no TC (RFC 2181 §9: additional data is not the answer). TCP
// carries it all.
func TestSRVTruncation(t *testing.T) {
	var b strings.Builder
	b.WriteString(`orgs/acme {"network":"fdaa:0:18::/48"}` + "\n")
	for i := range 40 {
		fmt.Fprintf(&b, `machines/acme/big/%04x {"region":"ams","ip":"fdaa:0:18:b::%x","state":"started","services":[{"name":"http","protocol":"tcp","port":80}]}`+"\n", i+1, i+1)
	}
	for i := range 10 {
		fmt.Fprintf(&b, `machines/acme/small/%04x {"region":"ams","ip":"fdaa:0:18:c::%x","state":"started","services":[{"name":"http","protocol":"tcp","port":80}]}`+"\n", i+1, i+1)
	}
	s := newTestServer(t, b.String(), "")
	w := s.newWorker()
	src := netip.MustParseAddr("fdaa:0:18:ffff::1")
	for _, path := range []string{"general", "cached miss", "cached hit"} {
		for _, tc := range []struct {
			name           string
			tc             bool
			answers, extra int // -1: fewer than all, more than 0
		}{
			{"_http._tcp.big.internal.", true, -1, 0},
			{"_http._tcp.small.internal.", false, 10, -1},
		} {
			raw := pack(t, query(tc.name, dns.TypeSRV))
			var out []byte
			if path == "general" {
				out = s.HandlePacket(Query{Raw: raw, Src: src, Transport: UDP})
			} else {
				out = w.handle(raw, src, netip.Addr{})
			}
			var m dns.Msg
			if err := m.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if len(out) > 512 || m.Truncated != tc.tc || m.Rcode != dns.RcodeSuccess {
				t.Errorf("%s %s: %d bytes, TC %v, rcode %d; want ≤ 512, TC %v", path, tc.name, len(out), m.Truncated, m.Rcode, tc.tc)
			}
			if tc.answers >= 0 && len(m.Answer) != tc.answers || tc.answers < 0 && (len(m.Answer) == 0 || len(m.Answer) >= 40) {
				t.Errorf("%s %s: %d answers", path, tc.name, len(m.Answer))
			}
			if tc.extra >= 0 && len(m.Extra) != tc.extra || tc.extra < 0 && (len(m.Extra) == 0 || len(m.Extra) >= len(m.Answer)) {
				t.Errorf("%s %s: %d additional records for %d answers", path, tc.name, len(m.Extra), len(m.Answer))
			}
			for i, rr := range m.Extra {
				if want := m.Answer[i].(*dns.SRV).Target; rr.Header().Name != want {
					t.Errorf("%s %s: additional %d is %s, want the AAAA of %s", path, tc.name, i, rr, want)
				}
			}
		}
	}
	var m dns.Msg
	if err := m.Unpack(s.HandlePacket(Query{Raw: pack(t, query("_http._tcp.big.internal.", dns.TypeSRV)), Src: src, Transport: TCP})); err != nil {
		t.Fatal(err)
	}
	if m.Truncated || len(m.Answer) != 40 || len(m.Extra) != 40 {
		t.Errorf("TCP: TC %v, %d answers, %d additional; want all 40 of each", m.Truncated, len(m.Answer), len(m.Extra))
	}
}
