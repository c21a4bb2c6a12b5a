package dnsserver

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
)

// Shutdown may be called twice, and after Start failed (which already
// called it); neither panics.
func TestShutdownTwice(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Shutdown(context.Background())
	s.Shutdown(context.Background())

	never := newTestServer(t, testRegistry(0), "acme")
	never.Shutdown(context.Background()) // never started
	never.Shutdown(context.Background())
}

func TestStartFailureThenShutdown(t *testing.T) {
	me := goroutineID()
	before := createdBy(me)
	s := New(Config{Listen: []string{"127.0.0.1:0", "not-an-address"}}, registry.NewStore(registry.DefaultPrefix))
	err := s.Start()
	if err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Fatalf("Start with a bad listen address: %v, want an error naming it", err)
	}
	s.Shutdown(context.Background()) // as a caller's deferred Shutdown does
	waitNoNewGoroutines(t, me, before, "after a failed Start and Shutdown")
}

// New starts nothing: a server built and never started leaves no
// goroutine behind, and one started and shut down leaves none either.
func TestNewStartsNoGoroutine(t *testing.T) {
	me := goroutineID()
	before := createdBy(me)
	for range 3 {
		New(Config{Listen: []string{"127.0.0.1:0"}, RateLimit: 100}, registry.NewStore(registry.DefaultPrefix))
	}
	if extra := newGoroutines(me, before); len(extra) > 0 {
		t.Fatalf("New started %d goroutines:\n%s", len(extra), strings.Join(extra, "\n\n"))
	}

	s := newTestServer(t, testRegistry(0), "acme")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if len(newGoroutines(me, before)) == 0 {
		t.Fatal("Start started no goroutine: the check cannot see them")
	}
	s.Shutdown(context.Background())
	waitNoNewGoroutines(t, me, before, "after Start and Shutdown")
}

// goroutineID is the calling goroutine's id, as stack dumps print it.
func goroutineID() string {
	var buf [64]byte
	f := strings.Fields(string(buf[:runtime.Stack(buf[:], false)]))
	return f[1] // "goroutine 123 [running]:"
}

// createdBy is the stacks of the live goroutines that goroutine id
// created, keyed by their own id.
func createdBy(id string) map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if !strings.Contains(s, " in goroutine "+id+"\n") && !strings.HasSuffix(s, " in goroutine "+id) {
			continue
		}
		if f := strings.Fields(s); len(f) > 1 {
			if _, err := strconv.Atoi(f[1]); err == nil {
				out[f[1]] = s
			}
		}
	}
	return out
}

func newGoroutines(id string, before map[string]string) []string {
	var extra []string
	for g, s := range createdBy(id) {
		if _, ok := before[g]; !ok {
			extra = append(extra, s)
		}
	}
	return extra
}

// waitNoNewGoroutines waits a little for goroutines that are on their way
// out (past wg.Done) to end.
func waitNoNewGoroutines(t *testing.T, id string, before map[string]string, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		extra := newGoroutines(id, before)
		if len(extra) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, %d goroutines left:\n%s", when, len(extra), strings.Join(extra, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
