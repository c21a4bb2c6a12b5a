// Package fleet checks meshdns the way a fleet runs it (issue 15): many
// servers on one etcd cluster through etcd's gRPC proxy, which coalesces
// their watches, does not forward progress requests, and cancels a client's
// whole watch stream when the client cannot take events for 50 ms. Three
// built meshdns processes (integration/harness) share a real
// `etcd grpc-proxy` in front of a three-member cluster of real etcd
// processes (internal/etcdtest), with etcd 3.7 (the release in go.mod) and
// with Debian's etcd 3.4 (/usr/bin/etcd). See README.md.
package fleet

import (
	"testing"

	"github.com/meshdns/meshdns/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
