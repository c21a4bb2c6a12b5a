package etcdtest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installHint tells whoever sees a skip or failure how to get the tool.
const installHint = "run scripts/test.sh, which installs every tool the tests need"

// RequireTool returns the path of the executable name found on PATH. If it is
// missing the test is skipped, or fails when the environment has CI=true,
// because on CI a missing tool means the install step is broken.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, name)
	}
	return path
}

// EtcdBinary returns the etcd server binary to run, looked up in order:
// $ETCD_BIN, etcd on PATH, $(go env GOPATH)/bin/etcd. The last one is where
// `go install` puts it, which is often not on PATH. Missing-binary handling is
// the same as RequireTool.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("ETCD_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			// An explicit setting that points nowhere is always a mistake.
			t.Fatalf("etcdtest: ETCD_BIN=%q: %v", bin, err)
		}
		return bin
	}
	if bin, err := exec.LookPath("etcd"); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		// GOPATH may be a list; go install uses the first entry.
		first := filepath.SplitList(strings.TrimSpace(string(out)))
		if len(first) > 0 && first[0] != "" {
			bin := filepath.Join(first[0], "bin", "etcd")
			if _, err := os.Stat(bin); err == nil {
				return bin
			}
		}
	}
	missingTool(t, "etcd")
	return ""
}

func missingTool(t testing.TB, name string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required tool %q not found (CI=true, so this is an error): %s", name, installHint)
	}
	t.Skipf("required tool %q not found; %s", name, installHint)
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago. All n listeners are held open together before any is closed, so the
// kernel cannot hand out the same port twice within one call. Another process
// can still grab a port before the caller binds it; callers that start servers
// on these ports should treat "address already in use" as retryable (Cluster
// does). Prefer binding port 0 directly when the server allows it.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("etcdtest: allocate free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// logTail returns the last n lines of the file at path, for failure reports.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(cannot read log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
