package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
)

// demoServeLimit is the stated requirement for `meshdns --demo`: from a
// clean data directory it answers from its registry within 5 s.
const demoServeLimit = 5 * time.Second

// meshctlDefaultEndpoint is where meshctl looks for etcd when given no
// --etcd-endpoints, and where meshdns's embedded etcd listens by default.
const meshctlDefaultEndpoint = "127.0.0.1:2379"

// demoPrinted is what `meshdns --demo` tells a newcomer to type.
type demoPrinted struct {
	digs    [][]string // dig arguments, without "dig"
	meshctl [][]string // meshctl arguments, without "go run ./cmd/meshctl"
}

func parseDemoOutput(out string) demoPrinted {
	var p demoPrinted
	for _, line := range strings.Split(out, "\n") {
		line, _, _ = strings.Cut(line, "#") // comments: dig and shell alike
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "dig" && strings.HasPrefix(f[1], "@"):
			p.digs = append(p.digs, f[1:])
		case len(f) > 3 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/meshctl":
			p.meshctl = append(p.meshctl, f[3:])
		}
	}
	return p
}

// TestDemo runs `meshdns --demo` as a newcomer would: it must serve within
// 5 s of starting, every command it prints must work as printed, Ctrl-C must
// stop it cleanly, and a restart must keep what was changed.
func TestDemo(t *testing.T) {
	t.Parallel()
	m := harness.StartMeshdns(t, harness.Demo(), harness.IPv6(), harness.Wait(harness.WaitListening))

	// Start to serving: the first answer for web.internal AAAA that is not
	// SERVFAIL (SERVFAIL is what meshdns says before its registry loads).
	q := harness.NewQuery("web.internal.", dns.TypeAAAA, harness.QueryOptions{})
	var first *dns.Msg
	var serving time.Duration
	harness.Poll(t, 30*time.Second, 5*time.Millisecond, "demo serving web.internal", func() (bool, string) {
		r, _, err := harness.Exchange(m.Addr(), q, harness.QueryOptions{Timeout: 200 * time.Millisecond})
		if err != nil {
			return false, err.Error()
		}
		if r.Rcode == dns.RcodeServerFailure {
			return false, "SERVFAIL"
		}
		first, serving = r, time.Since(m.StartedAt())
		return true, ""
	})
	t.Logf("demo: process start to first non-SERVFAIL answer for web.internal AAAA: %v", serving.Round(time.Millisecond))
	if serving > demoServeLimit {
		t.Fatalf("meshdns --demo took %v from process start to serving web.internal; the requirement is %v", serving, demoServeLimit)
	}
	if first.Rcode != dns.RcodeSuccess || len(first.Answer) == 0 {
		t.Fatalf("first answer for web.internal AAAA: %s with %d answers, want NOERROR with answers:\n%v", harness.Rcode(first), len(first.Answer), first)
	}

	// The demo text is printed in one write once the registry is loaded.
	var printed demoPrinted
	harness.Poll(t, 10*time.Second, 10*time.Millisecond, "demo instructions on stdout", func() (bool, string) {
		printed = parseDemoOutput(m.Stdout())
		return len(printed.digs) > 0 && len(printed.meshctl) > 0, "stdout so far:\n" + m.Stdout()
	})

	t.Run("printed dig commands", func(t *testing.T) {
		for _, args := range printed.digs {
			res := digtest.Run(t, args...)
			cmd := "dig " + strings.Join(args, " ")
			if res.Status != "NOERROR" || len(res.Answer) == 0 {
				t.Errorf("%s: status %s with %d answers, want NOERROR with at least one\n%s", cmd, res.Status, len(res.Answer), res.Raw)
				continue
			}
			if !res.HasFlag("aa") {
				t.Errorf("%s: no aa flag\n%s", cmd, res.Raw)
			}
			if slices.Contains(args, "+tcp") && res.Protocol != "TCP" {
				t.Errorf("%s: answered over %q, want TCP", cmd, res.Protocol)
			}
		}
	})

	t.Run("answers on [::1] too", func(t *testing.T) {
		// The demo listens on both loopbacks by default; so does this one.
		res := digtest.Run(t, "@::1", "-p", m.Port(), "aaaa", "web.internal")
		if res.Status != "NOERROR" || len(res.Answer) == 0 || !res.HasFlag("aa") {
			t.Errorf("dig @::1 aaaa web.internal: %s with %d answers, flags %v\n%s", res.Status, len(res.Answer), res.Flags, res.Raw)
		}
		if got := txtOf(t, digtest.Run(t, "@::1", "-p", m.Port(), "txt", "_whoami.internal")); got != "org=demo,region=ams,ip=::1" {
			t.Errorf("_whoami.internal from ::1 = %q, want org=demo,region=ams,ip=::1", got)
		}
	})

	t.Run("printed meshctl lines reach this server's etcd", func(t *testing.T) {
		// The lines must work as printed. Without --etcd-endpoints meshctl
		// talks to 127.0.0.1:2379, which is this server's etcd only when
		// --embedded-etcd-url has its default. (Running them as printed
		// could write into whatever etcd holds that port on this machine,
		// so this is checked from the text.)
		ep := strings.TrimPrefix(m.EtcdEndpoint(), "http://")
		for _, args := range printed.meshctl {
			if i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "--etcd-endpoints") }); i >= 0 {
				given, ok := strings.CutPrefix(args[i], "--etcd-endpoints=")
				if !ok && i+1 < len(args) {
					given = args[i+1]
				}
				if strings.TrimPrefix(given, "http://") != ep {
					t.Errorf("printed meshctl line names etcd %q, but this server's etcd is %s: %s", given, m.EtcdEndpoint(), strings.Join(args, " "))
				}
				continue
			}
			if ep == meshctlDefaultEndpoint {
				continue
			}
			t.Errorf("meshdns --demo --embedded-etcd-url %s prints\n\tgo run ./cmd/meshctl %s\n"+
				"which talks to meshctl's default etcd %s, not this server's %s: "+
				"the printed line needs --etcd-endpoints %s", m.EtcdEndpoint(), strings.Join(args, " "),
				meshctlDefaultEndpoint, m.EtcdEndpoint(), m.EtcdEndpoint())
		}
	})

	// The printed meshctl commands with the built meshctl: as printed when
	// they name the etcd, else against the embedded etcd. Remember what a
	// state change did, to check it in DNS and across the restart.
	var changedID, changedApp, changedState string
	t.Run("printed meshctl commands", func(t *testing.T) {
		for _, args := range printed.meshctl {
			ep := m.EtcdEndpoint()
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--etcd-endpoints") }) {
				ep = ""
			}
			out := harness.MustMeshctl(t, ep, args...)
			t.Logf("meshctl %s:\n%s", strings.Join(args, " "), out)
			if i := slices.Index(args, "state"); i > 0 && args[i-1] == "machine" && i+2 < len(args) {
				changedID, changedState = args[i+1], args[i+2]
				if j := slices.Index(args, "--app"); j >= 0 && j+1 < len(args) {
					changedApp = args[j+1]
				}
			}
		}
	})
	if changedID == "" || changedApp == "" || changedState != "stopped" {
		t.Fatalf("the demo no longer prints `meshctl machine state ID stopped --org demo --app APP` (found id %q app %q state %q); update this test", changedID, changedApp, changedState)
	}
	vmName := changedID + ".vm." + changedApp + ".internal"
	checkStopped := func(t *testing.T, when string) {
		t.Helper()
		res := m.Dig(t, "aaaa", vmName)
		if res.Status != "NOERROR" || len(res.Answer) != 0 {
			t.Errorf("%s: dig aaaa %s: %s with %d answers, want NOERROR without answers (machine %s)\n%s", when, vmName, res.Status, len(res.Answer), changedState, res.Raw)
		}
		vms := txtOf(t, m.Dig(t, "txt", "vms."+changedApp+".internal"))
		if strings.Contains(vms, changedID) {
			t.Errorf("%s: vms.%s.internal = %q still lists %s", when, changedApp, vms, changedID)
		}
		all := txtOf(t, m.Dig(t, "txt", "all.vms."+changedApp+".internal"))
		if !strings.Contains(all, changedID+" ") {
			t.Errorf("%s: all.vms.%s.internal = %q does not list %s", when, changedApp, all, changedID)
		}
	}
	harness.Poll(t, 2*time.Second, 5*time.Millisecond, vmName+" gone from AAAA after meshctl machine state", func() (bool, string) {
		r := m.Query(t, vmName, dns.TypeAAAA, harness.QueryOptions{})
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 0, r.String()
	})
	checkStopped(t, "after meshctl")

	// Ctrl-C.
	stopAt := time.Now()
	if code := m.Stop(); code != 0 {
		t.Fatalf("meshdns --demo exited with code %d after SIGINT, want 0", code)
	}
	t.Logf("demo: SIGINT to exit took %v", time.Since(stopAt).Round(time.Millisecond))

	// Restart on the same data directory: the demo seed must not undo the
	// change made through meshctl.
	m.Restart()
	t.Logf("demo: restart on the same data dir: serving after %v", m.WaitLoaded().Round(time.Millisecond))
	checkStopped(t, "after restart")
	res := m.Dig(t, "aaaa", "web.internal")
	if res.Status != "NOERROR" || len(res.Answer) == 0 {
		t.Errorf("after restart: dig aaaa web.internal: %s with %d answers\n%s", res.Status, len(res.Answer), res.Raw)
	}
	if code := m.Stop(); code != 0 {
		t.Fatalf("restarted meshdns --demo exited with code %d after SIGINT, want 0", code)
	}
}

// txtOf returns the text of a response's single TXT answer, its strings
// concatenated as clients do; the test fails if there is not exactly one.
func txtOf(t testing.TB, res *digtest.Result) string {
	t.Helper()
	if res.Status != "NOERROR" || len(res.Answer) != 1 {
		t.Fatalf("want NOERROR with one TXT record, got %s with %d answers\n%s", res.Status, len(res.Answer), res.Raw)
	}
	txt, ok := res.Answer[0].(*dns.TXT)
	if !ok {
		t.Fatalf("answer is %T, want TXT\n%s", res.Answer[0], res.Raw)
	}
	return strings.Join(txt.Txt, "")
}
