package ops

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
)

// A flood from loopback past a small --rate-limit shows in /metrics as
// meshdns_dns_rate_limited_total: UDP queries dropped and slipped (as many
// slips as TC=1 replies the flooder got), then a TCP connection closed.
func TestRateLimitedQueriesCounted(t *testing.T) {
	t.Parallel()
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.Demo(), harness.Args("--http", h, "--rate-limit", "5", "--rate-limit-slip", "2"))
	readyz(t, h, http.StatusOK, 20*time.Second)
	const name = "meshdns_dns_rate_limited_total"
	before := scrape(t, h)

	const flood = 200
	c, err := net.Dial("udp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := new(dns.Msg)
	req.SetQuestion("web.internal.", dns.TypeAAAA)
	raw, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	for range flood {
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	// Read until the replies stop coming.
	answered, slipped := 0, 0
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		var r dns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if r.Truncated {
			slipped++
		} else {
			answered++
		}
	}
	var drop, slip float64
	harness.Poll(t, 5*time.Second, 20*time.Millisecond, "every query counted", func() (bool, string) {
		after := scrape(t, h)
		drop = value(after, name, "transport=udp", "action=drop") - value(before, name, "transport=udp", "action=drop")
		slip = value(after, name, "transport=udp", "action=slip") - value(before, name, "transport=udp", "action=slip")
		return int(drop+slip)+answered == flood, fmt.Sprintf("%v dropped + %v slipped + %d answered, want %d", drop, slip, answered, flood)
	})
	if int(slip) != slipped || drop < flood/3 || slip < flood/3 {
		t.Errorf("%d answered, %d TC=1 replies; counted %v dropped and %v slipped", answered, slipped, drop, slip)
	}

	// Over TCP, the connection over the limit is closed.
	tc, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(raw))), raw...)
	closed := false
	for range 50 {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := tc.Write(msg); err != nil {
			closed = true
			break
		}
		var l [2]byte
		if _, err := io.ReadFull(tc, l[:]); err != nil {
			closed = true
			break
		}
		if _, err := io.ReadFull(tc, buf[:binary.BigEndian.Uint16(l[:])]); err != nil {
			closed = true
			break
		}
	}
	if !closed {
		t.Fatal("50 TCP queries at once over a limit of 5/s, and the connection stays open")
	}
	harness.Poll(t, 5*time.Second, 20*time.Millisecond, "the closed TCP connection counted", func() (bool, string) {
		d := value(scrape(t, h), name, "transport=tcp", "action=close") - value(before, name, "transport=tcp", "action=close")
		return d == 1, fmt.Sprintf("%v TCP connections closed over the limit, want 1", d)
	})
}
