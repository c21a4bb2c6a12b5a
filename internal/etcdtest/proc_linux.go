package etcdtest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd such that the kernel SIGKILLs it when the test
// binary dies without running its cleanups (a `go test -timeout` panic,
// os.Exit, SIGKILL), so no etcd is ever left running.
//
// The parent-death signal fires when the *thread* that forked the child exits,
// not the process, and the Go runtime destroys any thread whose goroutine exits
// while locked to it (as network-namespace code typically does). So every
// child is forked from one dedicated goroutine that locks its thread and never
// exits.
func startProcess(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
