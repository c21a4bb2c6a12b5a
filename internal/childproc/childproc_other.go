//go:build !linux

// Package childproc starts the processes tests run so that none outlives
// the test binary, where the system allows it.
package childproc

import "os/exec"

// Start starts cmd. Only Linux can tie a child's life to ours; elsewhere
// an aborted test run may leave it running.
func Start(cmd *exec.Cmd) error { return cmd.Start() }
