//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestWithTransports(t *testing.T) {
	loads, err := parseLoads("4x200,1x100")
	if err != nil {
		t.Fatal(err)
	}
	got, err := withTransports(loads, "udp, tcp,tcp1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range got {
		names = append(names, l.String())
	}
	want := []string{"-c 4 -q 200", "-c 1 -q 100", "tcp -c 4 -q 200", "tcp -c 1 -q 100", "tcp1 -c 4 -q 200", "tcp1 -c 1 -q 100"}
	if !slices.Equal(names, want) {
		t.Fatalf("loads %q, want %q", names, want)
	}
	if _, err := withTransports(loads, "udp,quic"); err == nil {
		t.Fatal("unknown transport accepted")
	}
	echo := target{Name: "echo"}
	if !echo.speaks(got[0]) || echo.speaks(got[2]) || echo.speaks(got[4]) {
		t.Fatal("the echo baseline is measured over UDP only")
	}
}

// meshbench's own TCP clients, one query per connection and pipelined,
// against a real DNS server on loopback that answers one name NXDOMAIN and
// closes each pipelined connection after 10 answers, as meshdns does after
// its own limit.
func TestOwnTCPClients(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: l, Net: "tcp", MaxTCPQueries: 10,
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			if r.Question[0].Name == "nx.internal." {
				m.Rcode = dns.RcodeNameError
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	mix := []query{{Name: "web.internal.", Type: dns.TypeAAAA}, {Name: "nx.internal.", Type: dns.TypeAAAA}}
	for name, run := range map[string]func(context.Context, string, []query, load, time.Duration) (perfResult, error){
		"tcp1": runTCP1, "tcp": runTCPPipelined,
	} {
		r, err := run(context.Background(), l.Addr().String(), mix, load{C: 2, Q: 4}, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Completed < 20 || r.Lost != 0 || r.Sent < r.Completed || r.QPS <= 0 {
			t.Errorf("%s: sent %d, answered %d, lost %d, %.0f QPS", name, r.Sent, r.Completed, r.Lost, r.QPS)
		}
		if r.AvgLatency <= 0 || r.MaxLat < r.AvgLatency || r.CPU <= 0 {
			t.Errorf("%s: latency avg %v max %v, CPU %v", name, r.AvgLatency, r.MaxLat, r.CPU)
		}
		// Round-robin over the two names: half each, give or take one query.
		var noerror, nxdomain int
		if _, err := fmt.Sscanf(r.Rcodes, "NOERROR %d%%, NXDOMAIN %d%%", &noerror, &nxdomain); err != nil ||
			noerror+nxdomain < 99 || noerror+nxdomain > 101 || noerror < 40 || nxdomain < 40 {
			t.Errorf("%s: rcodes %q, want about half NOERROR, half NXDOMAIN", name, r.Rcodes)
		}
	}
	// Nobody answering: an error that says so, not a result.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close()
	if _, err := runTCP1(context.Background(), addr, mix, load{C: 1, Q: 1}, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no query answered") {
		t.Errorf("tcp1 against a closed port: %v", err)
	}
}
