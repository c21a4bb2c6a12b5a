package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshdns/meshdns/forward"
)

func TestForwardExchangesAndCacheAreCounted(t *testing.T) {
	m := New()
	obs := m.Forward()
	obs.ObserveUpstream("10.0.0.1:53", "udp", 3*time.Millisecond, nil)
	obs.ObserveUpstream("10.0.0.1:53", "udp", 5*time.Millisecond, nil)
	obs.ObserveUpstream("10.0.0.1:53", "tcp", 2*time.Second, fmt.Errorf("exchange: %w", context.DeadlineExceeded))
	obs.ObserveUpstream("10.0.0.2:53", "udp", time.Millisecond, errors.New("connection refused"))
	obs.ObserveCache(true)
	obs.ObserveCache(false)
	obs.ObserveCache(false)
	obs.ObserveProbe("10.0.0.1:53", true)
	obs.ObserveProbe("10.0.0.2:53", true)
	obs.ObserveProbe("10.0.0.2:53", false)
	obs.ObserveBusy()

	reg := m.Registry()
	wantValue(t, reg, 2, "meshdns_forward_upstream_requests_total", "upstream=10.0.0.1:53", "proto=udp", "result=ok")
	wantValue(t, reg, 1, "meshdns_forward_upstream_requests_total", "upstream=10.0.0.1:53", "proto=tcp", "result=timeout")
	wantValue(t, reg, 1, "meshdns_forward_upstream_requests_total", "upstream=10.0.0.2:53", "proto=udp", "result=error")
	wantValue(t, reg, 2, "meshdns_forward_upstream_duration_seconds", "upstream=10.0.0.1:53") // successful exchanges only
	if _, ok := metricValue(t, reg, "meshdns_forward_upstream_duration_seconds", "upstream=10.0.0.2:53"); ok {
		t.Errorf("a failed exchange was timed")
	}
	wantValue(t, reg, 1, "meshdns_forward_cache_hits_total")
	wantValue(t, reg, 2, "meshdns_forward_cache_misses_total")
	wantValue(t, reg, 1, "meshdns_forward_upstream_probes_total", "upstream=10.0.0.2:53", "result=dead")
	wantValue(t, reg, 1, "meshdns_forward_upstream_healthy", "upstream=10.0.0.1:53")
	wantValue(t, reg, 0, "meshdns_forward_upstream_healthy", "upstream=10.0.0.2:53")
	wantValue(t, reg, 1, "meshdns_forward_busy_total")
	// The answer cache's counters are apart from the forwarder's.
	wantValue(t, reg, 0, "meshdns_cache_hits_total")
	wantValue(t, reg, 0, "meshdns_cache_misses_total")
}

// A new forwarder's upstreams show as healthy before any probe, and a new
// forwarder (a reload with other upstreams) drops the old ones' series.
func TestUpstreamsShowHealthyBeforeTheirFirstProbe(t *testing.T) {
	m := New()
	if _, err := forward.New(forward.Config{Upstreams: []string{"192.0.2.1", "192.0.2.2:5353"}, Observer: m.Forward()}); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	wantValue(t, reg, 1, "meshdns_forward_upstream_healthy", "upstream=192.0.2.1:53")
	wantValue(t, reg, 1, "meshdns_forward_upstream_healthy", "upstream=192.0.2.2:5353")
	if _, err := forward.New(forward.Config{Upstreams: []string{"192.0.2.3"}, Observer: m.Forward()}); err != nil {
		t.Fatal(err)
	}
	if _, ok := metricValue(t, reg, "meshdns_forward_upstream_healthy", "upstream=192.0.2.1:53"); ok {
		t.Errorf("a removed upstream is still reported")
	}
	wantValue(t, reg, 1, "meshdns_forward_upstream_healthy", "upstream=192.0.2.3:53")
}
