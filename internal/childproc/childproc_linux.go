// Package childproc starts the processes tests run (etcd, meshdns, helpers
// in network namespaces) so that none outlives the test binary.
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd so that the kernel SIGKILLs it if the test binary dies
// without running its cleanups (a -timeout panic, os.Exit, SIGKILL): no
// child is ever left behind holding ports or namespaces.
//
// The parent-death signal fires when the thread that forked the child
// exits, not the process, and the Go runtime destroys a thread whose
// goroutine exits while locked to it (as network-namespace code does). So
// every child is forked from one goroutine that is locked to its thread and
// never returns.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() { go spawner() })
	errc := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd, errc}
	return <-errc
}

type spawnRequest struct {
	cmd  *exec.Cmd
	errc chan<- error
}

var (
	spawnOnce     sync.Once
	spawnRequests = make(chan spawnRequest)
)

func spawner() {
	runtime.LockOSThread()
	for req := range spawnRequests {
		req.errc <- req.cmd.Start()
	}
}
