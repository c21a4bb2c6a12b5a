// Package ops checks what an operator of meshdns relies on, through the
// built binary: /metrics, /healthz and /readyz, forwarding to upstream
// resolvers, the config file and SIGHUP, and etcd with TLS client
// certificates.
package ops

import (
	"testing"

	"github.com/meshdns/meshdns/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
