package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Binaries are the paths of the built programs.
type Binaries struct {
	Meshdns string
	Meshctl string
}

var (
	mainActive atomic.Bool

	buildOnce sync.Once
	buildDir  string
	buildBins Binaries
	buildErr  error
	buildTook time.Duration
	// meshdnsFlags are the long flags `meshdns --help` lists, so the
	// harness passes only flags the binary under test knows.
	meshdnsFlags map[string]bool
)

// Main runs the tests of a package that uses the harness and removes the
// binaries Build made. Call it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Build builds ./cmd/meshdns and ./cmd/meshctl of the module under test
// with `go build`, once per test binary; later calls return the same
// binaries (or fail with the same build error). The binaries live in a
// temporary directory that Main removes when all tests are done; it must
// outlive any single test, which is why it is not a t.TempDir().
func Build(t testing.TB) Binaries {
	t.Helper()
	if !mainActive.Load() {
		t.Fatal("harness: Build needs harness.Main(m) in the package's TestMain (it removes the built binaries at the end)")
	}
	first := false
	buildOnce.Do(func() { first = true; buildBins, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("harness: %v", buildErr)
	}
	if first {
		t.Logf("harness: built meshdns and meshctl in %v", buildTook.Round(time.Millisecond))
	}
	return buildBins
}

func build() (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	dir, err := os.MkdirTemp("", "meshdns-integration-bin-")
	if err != nil {
		return Binaries{}, err
	}
	buildDir = dir
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/meshdns", "./cmd/meshctl")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/meshdns ./cmd/meshctl in %s: %v\n%s", root, err, out.String())
	}
	buildTook = time.Since(start)
	bins := Binaries{
		Meshdns: filepath.Join(dir, "meshdns"),
		Meshctl: filepath.Join(dir, "meshctl"),
	}
	help, err := exec.Command(bins.Meshdns, "--help").CombinedOutput()
	if err != nil {
		return Binaries{}, fmt.Errorf("meshdns --help: %v\n%s", err, help)
	}
	meshdnsFlags = map[string]bool{}
	for _, f := range strings.Fields(string(help)) {
		if name, ok := strings.CutPrefix(f, "--"); ok {
			meshdnsFlags[strings.TrimRight(name, ",")] = true
		}
	}
	return bins, nil
}

// hasFlag reports whether the built meshdns knows --name.
func hasFlag(name string) bool { return meshdnsFlags[name] }

// ModuleRoot is the directory of the go.mod of the module under test, as
// `go env GOMOD` reports it from the current directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module (got %q)", mod)
	}
	return filepath.Dir(mod), nil
}
