//go:build !windows

package etcdtest

import "syscall"

// sigStop and sigCont pause and continue a member (Pause, Resume).
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
