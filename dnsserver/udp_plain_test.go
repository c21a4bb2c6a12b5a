package dnsserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The portable reader (what macOS, FreeBSD and Windows serve UDP with)
// answers real UDP queries on a specific and on a wildcard socket, and
// cuts a big answer to the client's size with TC, as the Linux readers do.
func TestPortableUDPReader(t *testing.T) {
	for _, bind := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(bind, func(t *testing.T) {
			s := newTestServer(t, testRegistry(100), "acme")
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(bind)))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				s.wg.Add(1)
				go s.servePortableUDP(c, bind == "0.0.0.0:0")
			}
			t.Cleanup(func() { s.closing.Store(true); c.Close(); s.wg.Wait() })
			addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), c.LocalAddr().(*net.UDPAddr).AddrPort().Port()).String()
			cl := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			r, _, err := cl.Exchange(query("web.internal.", dns.TypeAAAA), addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || r.Truncated {
				t.Fatalf("web.internal: %s, %d answers, TC %v; want NOERROR with 2", dns.RcodeToString[r.Rcode], len(r.Answer), r.Truncated)
			}
			m := query("big.internal.", dns.TypeAAAA)
			m.SetEdns0(1232, false)
			r, _, err = cl.Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			r.Compress = true // as sent
			if r.Rcode != dns.RcodeSuccess || !r.Truncated || len(r.Answer) == 0 || r.Len() > 1232 {
				t.Fatalf("big.internal: %s, %d answers in %d bytes, TC %v; want the nearest that fit in 1232 with TC", dns.RcodeToString[r.Rcode], len(r.Answer), r.Len(), r.Truncated)
			}
		})
	}
}
