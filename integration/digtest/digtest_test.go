package digtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// TestRun checks Run and Parse against real dig output for each response
// shape the DNS server's tests rely on.
func TestRun(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, r *digtest.Result)
	}{{
		name: "AAAA",
		args: []string{"aaaa.test", "AAAA"},
		check: func(t *testing.T, r *digtest.Result) {
			want(t, "status", r.Status, "NOERROR")
			want(t, "opcode", r.Opcode, "QUERY")
			want(t, "flags", strings.Join(r.Flags, " "), "qr aa rd")
			want(t, "question", r.Question[0].String(), ";aaaa.test.\tIN\t AAAA")
			wantRRs(t, "answer", r.Answer, zone["aaaa.test. AAAA"]...)
			wantRRs(t, "authority", r.Authority)
			wantRRs(t, "additional", r.Additional)
			if r.EDNS == nil || r.EDNS.Version != 0 || r.EDNS.UDPSize != 1232 || len(r.EDNS.Flags) != 0 {
				t.Errorf("EDNS = %+v, want version 0, udp 1232, no flags", r.EDNS)
			}
			want(t, "server", r.Server, "127.0.0.1#"+s.port)
			want(t, "protocol", r.Protocol, "UDP")
			if r.RetriedTCP || r.MsgSize == 0 || r.ID == 0 {
				t.Errorf("RetriedTCP=%v MsgSize=%d ID=%d", r.RetriedTCP, r.MsgSize, r.ID)
			}
			if !slices.Contains(r.Notes, "WARNING: recursion requested but not available") {
				t.Errorf("notes = %q, want the recursion warning", r.Notes)
			}
		},
	}, {
		name: "TXT with several strings, no recursion",
		args: []string{"txt.test", "TXT", "+norec"},
		check: func(t *testing.T, r *digtest.Result) {
			want(t, "flags", strings.Join(r.Flags, " "), "qr aa")
			wantRRs(t, "answer", r.Answer, zone["txt.test. TXT"]...)
			// miekg/dns keeps TXT strings in presentation form, escapes
			// included.
			txt := r.Answer[0].(*dns.TXT).Txt
			if !slices.Equal(txt, []string{"hello world", "second string", `with \"quotes\"`}) {
				t.Errorf("TXT strings = %q", txt)
			}
			if len(r.Notes) != 0 {
				t.Errorf("notes = %q, want none", r.Notes)
			}
		},
	}, {
		name: "NXDOMAIN with SOA",
		args: []string{"nx.test", "A"},
		check: func(t *testing.T, r *digtest.Result) {
			want(t, "status", r.Status, "NXDOMAIN")
			wantRRs(t, "answer", r.Answer)
			wantRRs(t, "authority", r.Authority, negativeSOA)
			if soa := r.Authority[0].(*dns.SOA); soa.Minttl != 300 {
				t.Errorf("SOA minimum = %d, want 300", soa.Minttl)
			}
		},
	}, {
		name: "BADVERS",
		args: []string{"aaaa.test", "AAAA", "+edns=1", "+noednsnegotiation"},
		check: func(t *testing.T, r *digtest.Result) {
			want(t, "status", r.Status, "BADVERS")
			wantRRs(t, "answer", r.Answer)
			if r.EDNS == nil || r.EDNS.Version != 0 {
				t.Errorf("EDNS = %+v, want version 0 (what the server supports)", r.EDNS)
			}
		},
	}, {
		name: "BADVERS then negotiated down",
		args: []string{"aaaa.test", "AAAA", "+edns=1"},
		check: func(t *testing.T, r *digtest.Result) {
			want(t, "status", r.Status, "NOERROR")
			wantRRs(t, "answer", r.Answer, zone["aaaa.test. AAAA"]...)
			if !slices.Contains(r.Notes, "BADVERS, retrying with EDNS version 0.") {
				t.Errorf("notes = %q, want the BADVERS retry", r.Notes)
			}
		},
	}, {
		name: "truncated without EDNS, retried over TCP",
		args: []string{"big.test", "TXT", "+noedns"},
		check: func(t *testing.T, r *digtest.Result) {
			if !r.RetriedTCP || r.Protocol != "TCP" || r.HasFlag("tc") {
				t.Errorf("RetriedTCP=%v Protocol=%q flags=%v, want a full TCP answer", r.RetriedTCP, r.Protocol, r.Flags)
			}
			if r.EDNS != nil {
				t.Errorf("EDNS = %+v, want none with +noedns", r.EDNS)
			}
			wantRRs(t, "answer", r.Answer, bigTXT()...)
		},
	}, {
		name: "truncated at +bufsize, retried over TCP",
		args: []string{"big.test", "TXT", "+bufsize=512"},
		check: func(t *testing.T, r *digtest.Result) {
			if !r.RetriedTCP || r.Protocol != "TCP" {
				t.Errorf("RetriedTCP=%v Protocol=%q, want a TCP retry", r.RetriedTCP, r.Protocol)
			}
			wantRRs(t, "answer", r.Answer, bigTXT()...)
		},
	}, {
		name: "truncated and kept with +ignore",
		args: []string{"big.test", "TXT", "+noedns", "+ignore"},
		check: func(t *testing.T, r *digtest.Result) {
			if r.RetriedTCP || r.Protocol != "UDP" || !r.HasFlag("tc") {
				t.Errorf("RetriedTCP=%v Protocol=%q flags=%v, want the truncated UDP answer", r.RetriedTCP, r.Protocol, r.Flags)
			}
			if n := len(r.Answer); n == 0 || n >= len(bigTXT()) {
				t.Errorf("got %d answers, want some but not all", n)
			}
		},
	}, {
		name: "TCP",
		args: []string{"big.test", "TXT", "+tcp"},
		check: func(t *testing.T, r *digtest.Result) {
			if r.RetriedTCP || r.Protocol != "TCP" {
				t.Errorf("RetriedTCP=%v Protocol=%q, want TCP from the start", r.RetriedTCP, r.Protocol)
			}
			wantRRs(t, "answer", r.Answer, bigTXT()...)
		},
	}, {
		name: "multiline SOA",
		args: []string{"soa.test", "SOA", "+multiline"},
		check: func(t *testing.T, r *digtest.Result) {
			wantRRs(t, "answer", r.Answer, zone["soa.test. SOA"]...)
		},
	}, {
		name: "query printed too",
		args: []string{"aaaa.test", "AAAA", "+qr"},
		check: func(t *testing.T, r *digtest.Result) {
			// The printed query has no qr flag and no answers.
			want(t, "flags", strings.Join(r.Flags, " "), "qr aa rd")
			wantRRs(t, "answer", r.Answer, zone["aaaa.test. AAAA"]...)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := digtest.Run(t, s.args(tc.args...)...)
			tc.check(t, r)
			if t.Failed() {
				t.Logf("dig output:\n%s", r.Raw)
			}
		})
	}
}

// TestParseErrors feeds Parse outputs it must reject instead of returning
// a partial result.
func TestParseErrors(t *testing.T) {
	s := startServer(t)
	full := digtest.Run(t, s.args("aaaa.test", "AAAA")...).Raw
	lostRecord := strings.Replace(full, "aaaa.test.\t\t300\tIN\tAAAA\t2001:db8::2\n", "", 1)
	if lostRecord == full {
		t.Fatalf("test setup: record line not found in:\n%s", full)
	}
	for name, out := range map[string]string{
		"empty":              "",
		"+short":             "2001:db8::1\n2001:db8::2\n",
		"two responses":      full + full,
		"count mismatch":     lostRecord,
		"bad record":         strings.Replace(full, "2001:db8::2", "not-an-address", 1),
		"unterminated paren": strings.Replace(full, "2001:db8::2", "2001:db8::2 (", 1),
	} {
		if r, err := digtest.Parse(out); err == nil {
			t.Errorf("%s: Parse succeeded (%+v), want an error", name, r)
		}
	}
}

func want(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// wantRRs compares records by their presentation form, in order.
func wantRRs(t *testing.T, section string, got []dns.RR, want ...string) {
	t.Helper()
	var g, w []string
	for _, rr := range got {
		g = append(g, rr.String())
	}
	for _, s := range want {
		w = append(w, must(dns.NewRR(s)).String())
	}
	if !slices.Equal(g, w) {
		t.Errorf("%s =\n%s\nwant\n%s", section, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// TestOwnQuery makes the collision that Again works around happen on
// purpose: a server socket with SO_REUSEPORT (as meshdns's are) that never
// answers, and dig told to bind that very port (-b). dig's socket, also
// SO_REUSEPORT and of the same user, shares the port and reads its own
// query; ReadOwnQuery must recognise that output, and a normal reply must
// not look like it.
func TestOwnQuery(t *testing.T) {
	dig := etcdtest.RequireTool(t, "dig")
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	for _, cookie := range []string{"+cookie", "+nocookie"} {
		out, _ := exec.Command(dig, "-b", "127.0.0.1#"+port, "@127.0.0.1", "-p", port, "+tries=1", "+time=1", cookie, "aaaa.test", "AAAA").CombinedOutput()
		if !digtest.ReadOwnQuery(string(out)) {
			t.Fatalf("dig %s bound to the server's own port: ReadOwnQuery = false for\n%s", cookie, out)
		}
		if r, err := digtest.Parse(string(out)); err != nil || slices.Contains(r.Flags, "qr") {
			t.Fatalf("dig's own query parsed as %+v, %v; want a message without qr", r, err)
		}
	}

	s := startServer(t)
	if r := digtest.Run(t, s.args("aaaa.test", "AAAA")...); digtest.ReadOwnQuery(r.Raw) {
		t.Fatalf("a real reply looks like dig's own query:\n%s", r.Raw)
	}
}

// TestAgain: Again runs dig again while it reads its own query, at most
// three times in all, returns the first output that is a reply, and fails
// the test when all three were dig's own query.
func TestAgain(t *testing.T) {
	own := ";; Warning: query response not set\n;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n; COOKIE: 93d03cbfd62169ca (echoed)\n"
	reply := ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; flags: qr aa rd;\n"
	// A QR-clear message carrying a server cookie is a server's doing:
	// not retried.
	bad := ";; Warning: query response not set\n;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n; COOKIE: 93d03cbfd62169ca0102030405060708 (good)\n"
	for _, tc := range []struct {
		outs  []string
		calls int
		want  string
		fatal bool
	}{
		{[]string{reply}, 1, reply, false},
		{[]string{own, reply}, 2, reply, false},
		{[]string{own, own, reply}, 3, reply, false},
		{[]string{bad, reply}, 1, bad, false},
		{[]string{own, own, own, reply}, 3, "", true},
	} {
		calls := 0
		rec := &fatalRecorder{TB: t}
		var got string
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, _ = digtest.Again(rec, func() (string, error) {
				calls++
				return tc.outs[calls-1], nil
			})
		}()
		<-done
		if (rec.fatal != "") != tc.fatal || got != tc.want || calls != tc.calls {
			t.Errorf("outputs %q: Again returned %q after %d calls, fatal %q; want %q after %d, fatal %v", tc.outs, got, calls, rec.fatal, tc.want, tc.calls, tc.fatal)
		}
	}
}

// fatalRecorder stands in for the test in TestAgain: Fatalf records the
// message and ends the goroutine, as testing's does.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper()             {}
func (f *fatalRecorder) Logf(string, ...any) {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
