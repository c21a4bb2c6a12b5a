//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// TestSmoke runs `meshbench smoke`: every benchmark end to end on a tiny
// registry (etcd, meshdns built from this tree, NSD, dnsperf), checking
// that each prints its table. It asserts nothing about speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dnsperf, NSD and meshdns for about a minute")
	}
	etcdtest.RequireTool(t, "dnsperf")
	etcdtest.RequireTool(t, "nsd")
	// The fleet benchmark runs etcd processes and etcd's gRPC proxy.
	t.Setenv("ETCD_BIN", etcdtest.EtcdBinary(t))
	var out, log bytes.Buffer
	code := run([]string{"smoke"}, &out, &log)
	t.Logf("progress:\n%s", log.String())
	t.Logf("tables:\n%s", out.String())
	if code != 0 {
		t.Fatalf("meshbench smoke exited %d", code)
	}
	for _, want := range []string{
		"## qps:", "QPS m/N", "meshdns", "nsd", "echo", "answers checked:",
		"## propagation:", "DNS shows change (all)",
		"## scale:", "first complete answer", "ratio (≥0.90)",
		"## fleet:", "etcd CPU ms/w", "## herd:", "local copies",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), ", 0 wrong") {
		t.Errorf("some answers differ from SPEC (see the tables)")
	}
}
