//go:build !windows

package main

import (
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// raiseOpenFiles lifts the soft limit to the hard one and warns when even
// that is below --max-tcp-conns and the headroom.
func TestRaiseOpenFiles(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = min(orig.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	raiseOpenFiles(1, zap.New(core))
	var got syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); err != nil {
		t.Fatal(err)
	}
	if got.Cur != orig.Max {
		t.Errorf("soft limit %d, want the hard limit %d", got.Cur, orig.Max)
	}
	if orig.Max >= 1+openFilesHeadroom && logs.Len() != 0 {
		t.Errorf("warned though the limit suffices: %v", logs.All())
	}
	if orig.Max < 1<<40 {
		raiseOpenFiles(int(orig.Max), zap.New(core))
		if logs.FilterMessageSnippet("--max-tcp-conns").Len() != 1 {
			t.Errorf("no warning for --max-tcp-conns %d at a limit of %d", orig.Max, orig.Max)
		}
	}
}
