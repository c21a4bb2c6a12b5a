package harness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// meshctlTimeout bounds one meshctl run. meshctl's own --timeout is 30 s;
// this only catches a hung process.
const meshctlTimeout = 60 * time.Second

// Meshctl runs the built meshctl with args against the etcd at
// etcdEndpoint (passed as --etcd-endpoints=...; give "" to leave the flag
// to args) and returns what it printed and its exit code. A non-zero exit
// is returned, not a failure: tests of rejected writes need it. The test
// fails only if meshctl cannot be run or hangs.
func Meshctl(t testing.TB, etcdEndpoint string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return MeshctlStdin(t, etcdEndpoint, nil, args...)
}

// MeshctlStdin is Meshctl with stdin (for `meshctl load -`).
func MeshctlStdin(t testing.TB, etcdEndpoint string, stdin io.Reader, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	bin := Build(t).Meshctl
	if etcdEndpoint != "" {
		// The = form keeps cobra from taking the value for a subcommand,
		// whatever args hold.
		args = append([]string{"--etcd-endpoints=" + etcdEndpoint}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), meshctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("harness: meshctl %s: no exit within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), meshctlTimeout, out.String(), errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("harness: run meshctl %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}

// MustMeshctl runs meshctl like Meshctl and fails the test unless it exits
// 0. It returns meshctl's stdout.
func MustMeshctl(t testing.TB, etcdEndpoint string, args ...string) string {
	t.Helper()
	out, errOut, code := Meshctl(t, etcdEndpoint, args...)
	if code != 0 {
		t.Fatalf("meshctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}
