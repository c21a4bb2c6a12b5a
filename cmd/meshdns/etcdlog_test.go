package main

import (
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// etcd's errors are errors until its Close begins; after that they are
// debug lines (its listeners report closing as errors).
func TestEmbeddedEtcdErrorsQuietOnlyAfterClose(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	closing := new(atomic.Bool)
	lg := zap.New(shutdownCore{Core: core, closing: closing}).With(zap.String("member", "meshdns"))
	lg.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("mux: server closed")))
	closing.Store(true)
	lg.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("http: Server closed")))
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d lines logged at info and above, want only the one before Close", n)
	}
	if e := logs.All()[0]; e.Level != zapcore.ErrorLevel || e.ContextMap()["member"] != "meshdns" {
		t.Fatalf("logged %v %v", e.Level, e.ContextMap())
	}
}
