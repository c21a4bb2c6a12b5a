//go:build !linux

package etcdtest

import "os/exec"

// startProcess starts cmd. Only Linux can tie the child's life to ours
// (see proc_linux.go); elsewhere an aborted test run may leave etcd running.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
