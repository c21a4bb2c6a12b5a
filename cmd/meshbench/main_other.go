//go:build !linux

package main

import (
	"fmt"
	"os"
)

// main on other systems says why there is nothing to run: the benchmarks
// need Linux (dnsperf, NSD, perf, /proc), so `go build ./...` works
// everywhere and meshbench explains itself.
func main() {
	fmt.Fprintln(os.Stderr, "meshbench: runs on Linux only (it drives dnsperf, NSD, perf and etcd and reads /proc)")
	os.Exit(2)
}
