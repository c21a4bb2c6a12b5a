// Package faults checks that meshdns stays right when etcd does not (issue
// 5, SPEC §4): elections in a three-member cluster, a member that goes away
// and comes back behind a compaction, a member that hangs, a frozen server,
// booting from the local copy without etcd, a 30-second outage, values
// that break the rules, a flood from one source, and the memory a full
// reload takes.
//
// Everything runs on loopback against the built meshdns binary (through
// integration/harness) and real etcd server processes (internal/etcdtest).
// See README.md for what each test asserts and what it measures.
package faults

import (
	"flag"
	"testing"

	"github.com/meshdns/meshdns/integration/harness"
)

func TestMain(m *testing.M) {
	// The parallel tests spend their time waiting on timeouts and
	// outages, not on CPU, so they run all at once unless -parallel says
	// otherwise (its default, GOMAXPROCS, would queue the 40-second outage
	// behind the others).
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "8")
	}
	harness.Main(m)
}
