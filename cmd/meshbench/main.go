// Command meshbench benchmarks meshdns: QPS, latency, CPU per query and
// memory side by side with NSD and a bare UDP echo loop; how fast registry
// changes reach DNS answers; and how meshdns copes with a million
// machines. See README.md in this directory.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
