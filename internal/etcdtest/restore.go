package etcdtest

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// SaveSnapshot writes a backup of the member's data to path with
// `etcdctl snapshot save`, as an operator backs etcd up. The member must be
// running.
func (m *Member) SaveSnapshot(path string) {
	m.t.Helper()
	m.mustBeRunning("SaveSnapshot")
	etcdctl := RequireTool(m.t, "etcdctl")
	m.runTool(etcdctl, "--endpoints", m.ClientURL, "--command-timeout", "20s", "snapshot", "save", path)
}

// RestoreSnapshot replaces the stopped member's data directory with the
// backup at path (`etcdctl snapshot restore`) under the same name, peer URL,
// initial cluster and cluster token, so the restored member has the cluster
// and member ids it had, at the backup's (older) revision. Start it
// afterwards. Meant for single-member clusters: a restore of a bigger
// cluster restores every member from the same backup.
func (m *Member) RestoreSnapshot(path string) {
	m.t.Helper()
	if m.running() {
		m.t.Fatalf("etcdtest: RestoreSnapshot: %s is running; stop it first", m.Name)
	}
	etcdctl := RequireTool(m.t, "etcdctl")
	if err := os.RemoveAll(m.DataDir); err != nil {
		m.t.Fatalf("etcdtest: %v", err)
	}
	m.runTool(etcdctl, "snapshot", "restore", path,
		"--name", m.Name,
		"--initial-cluster", m.flag("--initial-cluster"),
		"--initial-cluster-token", m.flag("--initial-cluster-token"),
		"--initial-advertise-peer-urls", m.PeerURL,
		"--data-dir", m.DataDir)
}

// flag is the value of one of the member's command-line flags.
func (m *Member) flag(name string) string {
	for i, a := range m.args {
		if a == name && i+1 < len(m.args) {
			return m.args[i+1]
		}
	}
	m.t.Fatalf("etcdtest: %s has no %s flag", m.Name, name)
	return ""
}

// runTool runs an etcd tool, logging its output to the member's log, and
// fails the test if it fails.
func (m *Member) runTool(bin string, args ...string) {
	m.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(etcdEnv(), "ETCDCTL_API=3")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if f, ferr := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
		fmt.Fprintf(f, "### etcdtest: %s %v (%v):\n%s", bin, args, time.Since(start).Round(time.Millisecond), out)
		f.Close()
	}
	if err != nil {
		m.t.Fatalf("etcdtest: %s %v: %v\n%s", bin, args, err, out)
	}
}
