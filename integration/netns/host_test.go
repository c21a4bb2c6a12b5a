package netns

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
)

func TestMain(m *testing.M) {
	runHelperIfAsked() // a WireGuard endpoint re-executed in a namespace
	runRawIfAsked()    // a raw etcd write or HTTP read in a namespace
	harness.Main(m)
}

// startupTimeout bounds meshdns's start (embedded etcd included) and the
// time a registry write takes to show in DNS; both take well under a
// second here.
const startupTimeout = 30 * time.Second

// meshHost is the "host" namespace running the built meshdns on [::]:53,
// with its embedded etcd on 127.0.0.1:2379 of that namespace.
type meshHost struct {
	t    *testing.T
	ns   string
	bins harness.Binaries
	d    *daemon  // the running meshdns
	args []string // its arguments, for restart
}

// startHost makes the host namespace, puts addrs (fdaa::3, the orgs'
// <network>::3) on its lo, as docs/addresses.md tells operators to, and
// starts meshdns there. It returns once meshctl can write the registry.
func startHost(t *testing.T, addrs ...string) *meshHost {
	t.Helper()
	return startHostArgs(t, nil, addrs...)
}

// startHostArgs is startHost with more meshdns flags.
func startHostArgs(t *testing.T, args []string, addrs ...string) *meshHost {
	t.Helper()
	h := &meshHost{t: t, ns: addNS(t, "host"), bins: harness.Build(t)}
	for _, a := range addrs {
		ip(t, h.ns, "-6", "addr", "add", a+"/128", "dev", "lo")
	}
	h.args = append([]string{"--listen", "[::]:53", "--region", "iad",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--log-level", "warn"}, args...)
	h.start()
	return h
}

// start starts meshdns and returns once meshctl can write the registry.
func (h *meshHost) start() {
	t := h.t
	t.Helper()
	d := startDaemon(t, h.ns, h.bins.Meshdns, h.args...)
	h.d = d
	err := poll(startupTimeout, func() error {
		if err := d.running(); err != nil {
			return err
		}
		_, err := h.tryMeshctl("", "org", "list")
		return err
	})
	if err != nil {
		t.Fatalf("meshdns's etcd did not come up: %v", err)
	}
}

func (h *meshHost) tryMeshctl(stdin string, args ...string) (string, error) {
	return tryRun(stdin, "ip", append([]string{"netns", "exec", h.ns, h.bins.Meshctl, "--etcd-endpoints", "127.0.0.1:2379"}, args...)...)
}

// meshctl runs the built meshctl in the host namespace.
func (h *meshHost) meshctl(stdin string, args ...string) string {
	h.t.Helper()
	out, err := h.tryMeshctl(stdin, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// dig runs the real dig inside ns. One try, short timeout: inside the
// namespaces nothing is lost, so a missing reply is a failure — including a
// reply from another address than the one asked, which dig ignores.
func dig(ns string, args ...string) (*digtest.Result, error) {
	out, err := tryRun("", "ip", append([]string{"netns", "exec", ns, "dig", "+time=3", "+tries=1"}, args...)...)
	if err != nil {
		return nil, err
	}
	return digtest.Parse(out)
}
