// Package harness runs the built meshdns and meshctl binaries for
// end-to-end tests: it builds them once per test binary, starts meshdns on
// free loopback ports (with its embedded etcd or against an external one),
// waits until it answers, runs meshctl commands, and sends DNS queries with
// miekg/dns for checks that dig cannot express.
//
// A test package that uses the harness must call Main from its TestMain,
// so that the directory holding the built binaries is removed at the end:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// Every process the harness starts is killed by t.Cleanup (and by the kernel
// if the test binary dies first), and its output is kept in files under
// t.TempDir() whose tails are printed when the test fails, so passing tests
// stay quiet.
//
// Functions taking a testing.TB call t.Fatal and so must be called from the
// test's goroutine.
package harness
