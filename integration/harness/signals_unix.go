//go:build !windows

package harness

import "syscall"

// sigStop and sigCont pause and continue a member (Pause, Resume, Stop).
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
