//go:build !linux

package harness

import "os/exec"

func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
