package ops

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshdns/meshdns/integration/harness"
)

// notifySocket plays systemd's side of sd_notify: a datagram socket whose
// messages are kept in order.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// count is how many messages so far hold line.
func (n *notifySocket) count(line string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		for _, l := range strings.Split(m, "\n") {
			if l == line {
				c++
			}
		}
	}
	return c
}

func (n *notifySocket) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("%q", n.msgs)
}

// meshdns under systemd (Type=notify, WatchdogSec): it feeds the watchdog
// while it answers, even while etcd is away; says READY=1 only once its
// snapshot is current with etcd (never before /readyz is 200); and says
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	n := listenNotify(t)
	clientPort, peerPort := harness.FreePort(t, false), harness.FreePort(t, false)
	ep := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Wait(harness.WaitListening),
		harness.Args("--default-org", "acme", "--http", h),
		harness.Env("NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=400000"))

	// etcd is not there yet: the watchdog is fed, READY=1 is not sent.
	harness.Poll(t, 5*time.Second, 20*time.Millisecond, "WATCHDOG=1 while etcd is away", func() (bool, string) {
		return n.count("WATCHDOG=1") >= 3, n.String()
	})
	if n.count("READY=1") != 0 {
		t.Fatalf("READY=1 before etcd was reached: %s", n)
	}
	if code, body, err := get(h, "/readyz"); err != nil || code == http.StatusOK {
		t.Fatalf("/readyz without etcd: %d %q %v", code, body, err)
	}

	e := startEtcd(t, clientPort, peerPort, nil)
	put(t, e, ep, nil, "orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	harness.Poll(t, 20*time.Second, 5*time.Millisecond, "READY=1 once etcd is back", func() (bool, string) {
		return n.count("READY=1") == 1, n.String()
	})
	// READY=1 follows readiness, never precedes it.
	if code, body, err := get(h, "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("READY=1 sent while /readyz says %d %q %v", code, body, err)
	}
	fed := n.count("WATCHDOG=1")
	time.Sleep(time.Second)
	if n.count("WATCHDOG=1") <= fed {
		t.Errorf("watchdog not fed while serving: %s", n)
	}

	m.Signal(syscall.SIGTERM)
	harness.Poll(t, 10*time.Second, 20*time.Millisecond, "STOPPING=1 on SIGTERM", func() (bool, string) {
		return n.count("STOPPING=1") == 1, n.String()
	})
	if c := n.count("READY=1"); c != 1 {
		t.Errorf("READY=1 sent %d times, want once", c)
	}
}
