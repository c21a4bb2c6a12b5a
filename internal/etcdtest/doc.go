// Package etcdtest starts etcd servers for tests.
//
// Two flavours are offered:
//
//   - Embedded runs a single-member etcd inside the test process. It starts in
//     tens of milliseconds and needs nothing installed, so it is the default
//     for tests that just need a registry to read from.
//   - Cluster runs n members of the real etcd binary as child processes, so
//     tests can kill, stop, pause and restart members and watch leader
//     elections, as happens in production. ClusterOf runs another etcd
//     release (Debian's 3.4 is /usr/bin/etcd) and extra member flags.
//   - StartGRPCProxy runs `etcd grpc-proxy start` in front of a cluster, as
//     a fleet of servers shares one; it can be stopped, killed and started
//     again on the same endpoint.
//
// Everything listens on 127.0.0.1 only, keeps its data under t.TempDir() and
// is torn down by t.Cleanup. Server logs go to files that are printed (tail
// only) when the test fails, so passing tests stay quiet.
//
// External tools (the etcd binary, dig, ip, dnsperf) are looked up at run
// time. When one is missing the test is skipped, except under CI=true where it
// fails: CI runs scripts/test.sh, which installs them, so a missing tool there
// is a bug and must not silently turn tests into skips.
package etcdtest
