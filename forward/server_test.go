package forward_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// These tests go through dnsserver, which decides who may be forwarded
// for and turns a failed forward into SERVFAIL.

const acmeRegistry = `orgs/acme {"network":"fdaa:0:18::/48"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
`

var (
	acmeSrc  = netip.MustParseAddr("fdaa:0:18:a7b:1::2")
	noOrgSrc = netip.MustParseAddr("127.0.0.1")
)

func newServer(t *testing.T, fwd dnsserver.Forwarder, timeout time.Duration) *dnsserver.Server {
	t.Helper()
	store := registry.NewStore(registry.DefaultPrefix)
	evs, err := registry.ParseText(registry.DefaultPrefix, acmeRegistry)
	if err != nil {
		t.Fatal(err)
	}
	store.Replace(int64(len(evs)), evs)
	return dnsserver.New(dnsserver.Config{
		Zones:          zones.Config{TTL: 5, NegTTL: 5, ServerRegion: "ams"},
		Forwarder:      fwd,
		ForwardTimeout: timeout,
	}, store)
}

func ask(t *testing.T, s *dnsserver.Server, src netip.Addr, name string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := s.HandlePacket(dnsserver.Query{Raw: raw, Src: src, Transport: dnsserver.UDP})
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return r
}

func TestServerForwardsForOrgMembers(t *testing.T) {
	up := startUpstream(t, answerA(60))
	s := newServer(t, newForwarder(t, forward.Config{Upstreams: []string{up.addr}}), time.Second)
	r := ask(t, s, acmeSrc, "example.com.")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable {
		t.Errorf("reply %v, want the upstream's answer with RA", r)
	}
}

// No open resolver: an asker in no org is refused and the upstream never
// hears of it.
func TestServerNeverForwardsForAskersWithoutOrg(t *testing.T) {
	up := startUpstream(t, answerA(60))
	s := newServer(t, newForwarder(t, forward.Config{Upstreams: []string{up.addr}}), time.Second)
	r := ask(t, s, noOrgSrc, "example.com.")
	if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("reply %v, want REFUSED", r)
	}
	if n := up.count("udp") + up.count("tcp"); n != 0 {
		t.Errorf("upstream was asked %d times for an asker without org", n)
	}
}

func TestServerAnswersServfailWithinTheForwardTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	s := newServer(t, newForwarder(t, forward.Config{Upstreams: []string{deadUpstream(t)}}), timeout)
	start := time.Now()
	r := ask(t, s, acmeSrc, "example.com.")
	took := time.Since(start)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	// Not waiting for the forward timeout would take the server's 2 s
	// default; up to 1 s late is a slow machine.
	if took < timeout-50*time.Millisecond || took > timeout+time.Second {
		t.Errorf("SERVFAIL after %v, want at the %v forward timeout", took, timeout)
	}
}
