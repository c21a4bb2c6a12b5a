package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// nsPrefix starts the name of every namespace these tests make, followed
// by the test process's pid, so that leftovers of a test binary that was
// killed can be told apart and removed by the next run.
const nsPrefix = "meshdnstest-"

var nsCounter atomic.Int64

// requireLab skips the test unless it can build namespaces: it needs root
// and ip(8). Under CI=true a missing requirement is a failure instead.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespace tests need root (CI=true, so this is an error)")
		}
		t.Skip("network namespace tests need root")
	}
	etcdtest.RequireTool(t, "ip")
	etcdtest.RequireTool(t, "dig")
	sweepStale(t)
}

// sweepStale deletes namespaces left by test binaries that no longer run
// (killed before their cleanups): their names carry a dead pid.
func sweepStale(t *testing.T) {
	out, err := tryRun("", "ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // not ours, or its test binary still runs
		}
		t.Logf("removing namespace %s of a test binary (pid %d) that is gone", name, pid)
		_, _ = tryRun("", "ip", "netns", "del", name)
		_ = os.RemoveAll(filepath.Join("/etc/netns", name))
	}
}

// addNS makes a namespace with its loopback up, deleted at cleanup (after
// the processes in it are stopped: cleanups run last-in first-out).
func addNS(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d-%d-%s", nsPrefix, os.Getpid(), nsCounter.Add(1), role)
	run(t, "", "ip", "netns", "add", name)
	t.Cleanup(func() {
		if _, err := tryRun("", "ip", "netns", "del", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = os.RemoveAll(filepath.Join("/etc/netns", name))
	})
	ip(t, name, "link", "set", "lo", "up")
	return name
}

// ip runs `ip -n ns args...`.
func ip(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, "", "ip", append([]string{"-n", ns}, args...)...)
}

// Link-local addresses of the two ends of every veth pair. They are only
// next hops: each link is its own scope, so every pair can use the same two.
const (
	hostLL  = "fe80::1"
	guestLL = "fe80::2"
)

// connect joins guest to host with a veth pair: hostIf in host, eth0 in
// guest, both up with the fixed link-local addresses (no automatic ones,
// and no duplicate address detection, which would keep them unusable for a
// second or two).
func connect(t *testing.T, host, hostIf, guest string) {
	t.Helper()
	ip(t, host, "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", guest)
	for _, end := range [][2]string{{host, hostIf}, {guest, "eth0"}} {
		ip(t, end[0], "link", "set", "dev", end[1], "addrgenmode", "none")
		ip(t, end[0], "link", "set", "dev", end[1], "up")
	}
	ip(t, host, "-6", "addr", "add", hostLL+"/64", "dev", hostIf, "nodad")
	ip(t, guest, "-6", "addr", "add", guestLL+"/64", "dev", "eth0", "nodad")
}

// routeVia makes ns reach each address in addrs via the other end of dev.
// Addresses on the other namespace's lo are not answered for neighbour
// discovery over the veth, so an on-link route would not do.
func routeVia(t *testing.T, ns, dev, nextHop string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ip(t, ns, "-6", "route", "add", a, "via", nextHop, "dev", dev)
	}
}
