package integration

import (
	"testing"

	"github.com/meshdns/meshdns/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
