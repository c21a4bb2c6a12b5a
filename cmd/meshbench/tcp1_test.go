//go:build linux

package main

import (
	"slices"
	"testing"
)

func TestWithTransports(t *testing.T) {
	loads, err := parseLoads("4x200,1x100")
	if err != nil {
		t.Fatal(err)
	}
	got, err := withTransports(loads, "udp, tcp,tcp1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range got {
		names = append(names, l.String())
	}
	want := []string{"-c 4 -q 200", "-c 1 -q 100", "tcp -c 4 -q 200", "tcp -c 1 -q 100", "tcp1 -c 4 -q 200", "tcp1 -c 1 -q 100"}
	if !slices.Equal(names, want) {
		t.Fatalf("loads %q, want %q", names, want)
	}
	if _, err := withTransports(loads, "udp,quic"); err == nil {
		t.Fatal("unknown transport accepted")
	}
	echo := target{Name: "echo"}
	if !echo.speaks(got[0]) || echo.speaks(got[2]) || echo.speaks(got[4]) {
		t.Fatal("the echo baseline is measured over UDP only")
	}
}
