package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestTakeoverRefused: a raw etcd write (past meshctl, which refuses it)
// moves org alpha onto beta's network. alpha is the older org — both were
// written in one transaction by `meshctl load`, and on equal revisions the
// name decides, alpha first — so dating claims by key creation would hand
// beta's askers to alpha. beta's askers, asking with the real dig from
// beta's addresses, must still see beta (_whoami, _apps), alpha's value is
// reported invalid (log and metric), and that holds after meshdns restarts
// from its local copy and after a restart without it (a full load).
func TestTakeoverRefused(t *testing.T) {
	l := newOrgLab(t)
	h := l.host
	key := "/meshdns/v1/orgs/alpha"
	raw(t, h.ns, "put "+key+` {"network":"`+beta.Network+`"}`)

	// Not served with alpha: its org value and every app key, machine and
	// peer of it.
	invalid := 1 + len(fxPeersOf("alpha"))
	for _, m := range fxMachines {
		if m.Org == "alpha" {
			invalid++
		}
	}
	for app := range fxFlycast {
		if strings.HasPrefix(app, "alpha/") {
			invalid++
		}
	}
	whoami := fmt.Sprintf("org=beta,machine=%s,app=%s,region=%s,ip=%s", l.b.machine.ID, l.b.machine.App, l.b.machine.Region, l.b.src)
	// reported is false after a restart from the local copy: the copy holds
	// what was served, not the values that were skipped (those come back
	// with the next full load), so there is nothing to report then.
	check := func(when string, reported bool) {
		t.Helper()
		if reported {
			checkReported(t, h, when, key, invalid)
		}
		for _, server := range []string{"fdaa::3", beta.dns()} {
			for _, q := range []struct{ name, want string }{{"_whoami.internal", whoami}, {"_apps.internal", fxApps("beta")}} {
				// A restarted meshdns may not answer at once.
				err := poll(startupTimeout, func() error {
					r, err := dig(l.b.ns, "-b", l.b.src, "@"+server, "txt", q.name)
					if err == nil && (r.Status != "NOERROR" || txtOf(r) != q.want) {
						err = fmt.Errorf("%s %q, want %q", r.Status, txtOf(r), q.want)
					}
					return err
				})
				if err != nil {
					t.Errorf("%s: dig -b %s @%s txt %s: %v", when, l.b.src, server, q.name, err)
				}
			}
		}
		// alpha is not served: its own askers belong to no org now.
		r, err := dig(l.syd.ns, "-b", l.syd.src, "@fdaa::3", "txt", "_whoami.internal")
		if err == nil && r.Status != "REFUSED" {
			err = fmt.Errorf("%s %q, want REFUSED", r.Status, txtOf(r))
		}
		if err != nil {
			t.Errorf("%s: alpha's asker: %v", when, err)
		}
	}
	check("after the raw write", true)

	h.d.stop()
	h.start()
	check("after a restart from the local copy", false)

	h.d.stop()
	copyPath := filepath.Join(h.args[slices.Index(h.args, "--data-dir")+1], "local-copy.json.gz")
	if err := os.Remove(copyPath); err != nil {
		t.Fatalf("no local copy to remove: %v", err)
	}
	h.start()
	check("after a restart without the local copy", true)
}

// checkReported waits until meshdns's log names key as skipped because
// beta holds its network, and requires meshdns_registry_invalid_values to
// be invalid.
func checkReported(t *testing.T, h *meshHost, when, key string, invalid int) {
	t.Helper()
	skipped := regexp.MustCompile(`registry value skipped.*` + regexp.QuoteMeta(key) + `.*already belongs to org beta`)
	err := poll(startupTimeout, func() error {
		if err := h.d.running(); err != nil {
			return err
		}
		out, _ := os.ReadFile(h.d.log)
		if !skipped.Match(out) {
			return fmt.Errorf("the log does not name %s as skipped:\n%s", key, tail(string(out), 10))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	metrics := raw(t, h.ns, "get http://127.0.0.1:9153/metrics")
	if want := fmt.Sprintf("\nmeshdns_registry_invalid_values %d\n", invalid); !strings.Contains(metrics, want) {
		t.Errorf("%s: want %q in /metrics:\n%s", when, strings.TrimSpace(want), grepLines(metrics, "invalid_values"))
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
