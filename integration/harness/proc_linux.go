package harness

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd so that the kernel SIGKILLs it if the test binary
// dies without running its cleanups (a -timeout panic, os.Exit, SIGKILL):
// no meshdns or meshctl is ever left behind holding ports.
//
// The parent-death signal fires when the thread that forked the child
// exits, not the process, so every child is forked from one goroutine that
// is locked to its thread and never returns.
func startProcess(cmd *exec.Cmd) error {
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
