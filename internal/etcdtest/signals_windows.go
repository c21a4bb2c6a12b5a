package etcdtest

import "syscall"

// Windows has no SIGSTOP/SIGCONT: Pause and Resume fail there (the
// signal is refused). These values only let the package build, so that
// GOOS=windows go build ./... works; the etcd tests run on Linux.
const (
	sigStop = syscall.Signal(0x13)
	sigCont = syscall.Signal(0x12)
)
