// Command meshbench benchmarks meshdns: QPS, latency, CPU per query and
// memory side by side with NSD and a bare UDP echo loop; how fast registry
// changes reach DNS answers; and how meshdns copes with a million
// machines. See README.md in this directory.
//
// meshbench runs on Linux only: it drives dnsperf, NSD, perf and etcd
// processes and reads their CPU from /proc.
package main
