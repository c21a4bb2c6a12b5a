package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/registry"
)

type pflagFlag = pflag.Flag

func nopLogger() *zap.Logger { return zap.NewNop() }

func mustParse(t *testing.T, args ...string) *options {
	t.Helper()
	o, err := parseOptions(args)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestApplyKeepsTheForwarderWhileUpstreamsStay(t *testing.T) {
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: zap.NewNop(), qlog: newQueryLog(zap.NewNop(), 0)}
	if err := rs.apply(mustParse(t, "--upstream", "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	first := rs.fwd
	if first == nil {
		t.Fatal("no forwarder for an upstream")
	}
	if err := rs.apply(mustParse(t, "--upstream", "192.0.2.1", "--ttl", "9s", "--log-level", "debug")); err != nil {
		t.Fatal(err)
	}
	if rs.fwd != first {
		t.Error("forwarder (and its cache) replaced though the upstreams did not change")
	}
	if rs.level.Level() != zapcore.DebugLevel {
		t.Errorf("log level %v after reload, want debug", rs.level.Level())
	}
	if err := rs.apply(mustParse(t, "--upstream", "192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if rs.fwd == first || !slices.Equal(rs.fwd.Upstreams(), []string{"192.0.2.2:53"}) {
		t.Errorf("upstreams after reload: %v", rs.fwd.Upstreams())
	}
	if err := rs.apply(mustParse(t)); err != nil {
		t.Fatal(err)
	}
	if rs.fwd != nil || rs.dnsConfig(rs.current).Forwarder != nil {
		t.Error("forwarder left after the upstreams were removed")
	}
}

// A reload that fails leaves the running settings as they were and logs
// the file and the reason.
func TestReloadKeepsOldSettingsOnABadFile(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	p := writeConfig(t, "ttl: 7s\n")
	args := []string{"--config", p}
	store := registry.NewStore(registry.DefaultPrefix)
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: log, qlog: newQueryLog(log, 0)}
	o := mustParse(t, args...)
	if err := rs.apply(o); err != nil {
		t.Fatal(err)
	}
	rs.srv = dnsserver.New(rs.dnsConfig(o), store)

	writeFile(t, p, "ttl: 7s\nttl-typo: 3s\n")
	reload(args, rs, nil)
	if rs.current.ttl != 7*time.Second {
		t.Errorf("ttl %v after a bad reload, want 7s kept", rs.current.ttl)
	}
	errs := logs.FilterMessage("configuration not reloaded; keeping the current settings").All()
	if len(errs) != 1 || !strings.Contains(errs[0].ContextMap()["error"].(string), "ttl-typo") ||
		errs[0].ContextMap()["file"] != p {
		t.Errorf("logged %v, want one error naming %s and the unknown key", errs, p)
	}

	writeFile(t, p, "ttl: 11s\nlisten: [127.0.0.1:5353]\n")
	reload(args, rs, nil)
	if rs.current.ttl != 11*time.Second {
		t.Errorf("ttl %v after a good reload, want 11s", rs.current.ttl)
	}
	if w := logs.FilterMessageSnippet("only after a restart").All(); len(w) != 1 {
		t.Errorf("changing listen logged %d restart warnings, want 1", len(w))
	}
	if got := rs.current.listen; !slices.Equal(got, o.listen) {
		t.Errorf("listen %v in the running settings, want the unchanged %v", got, o.listen)
	}
}

func TestQueryLogSamples(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	q := newQueryLog(zap.New(core), 3)
	for range 10 {
		q.ObserveQuery(dnsserver.QueryInfo{Name: "web.internal.", Qtype: dns.TypeAAAA})
	}
	if n := logs.Len(); n != 3 {
		t.Errorf("logged %d of 10 queries at 1 in 3, want 3", n)
	}
	q.setEvery(0)
	q.ObserveQuery(dnsserver.QueryInfo{})
	if n := logs.Len(); n != 3 {
		t.Errorf("logged with sampling off")
	}
}

// A new byte bound for the forwarding cache makes a new forwarder (and
// cache); the same one keeps it.
func TestApplyRemakesTheForwarderForNewCacheBounds(t *testing.T) {
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: zap.NewNop(), qlog: newQueryLog(zap.NewNop(), 0)}
	if err := rs.apply(mustParse(t, "--upstream", "192.0.2.1", "--forward-cache-bytes", "1MiB")); err != nil {
		t.Fatal(err)
	}
	first := rs.fwd
	if err := rs.apply(mustParse(t, "--upstream", "192.0.2.1", "--forward-cache-bytes", "1MiB")); err != nil || rs.fwd != first {
		t.Fatalf("same bounds: err %v, forwarder replaced %v", err, rs.fwd != first)
	}
	for _, args := range [][]string{{"--forward-cache-bytes", "2MiB"}, {"--forward-cache-bytes", "2MiB", "--forward-cache-max-reply", "4KiB"}} {
		before := rs.fwd
		if err := rs.apply(mustParse(t, append([]string{"--upstream", "192.0.2.1"}, args...)...)); err != nil {
			t.Fatal(err)
		}
		if rs.fwd == before {
			t.Errorf("%v: the forwarder was kept", args)
		}
	}
}

// The TCP connection caps reach the server and change on reload, without
// a restart warning.
func TestTCPCapsReload(t *testing.T) {
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: zap.NewNop(), qlog: newQueryLog(zap.NewNop(), 0)}
	old := mustParse(t)
	if cfg := rs.dnsConfig(old); cfg.MaxTCPConns != 1000 || cfg.MaxTCPConnsPerPrefix != 50 {
		t.Errorf("defaults: %d in all, %d per prefix; want 1000 and 50", cfg.MaxTCPConns, cfg.MaxTCPConnsPerPrefix)
	}
	o := mustParse(t, "--max-tcp-conns", "300", "--max-tcp-conns-per-prefix", "7")
	if cfg := rs.dnsConfig(o); cfg.MaxTCPConns != 300 || cfg.MaxTCPConnsPerPrefix != 7 {
		t.Errorf("%d in all, %d per prefix; want 300 and 7", cfg.MaxTCPConns, cfg.MaxTCPConnsPerPrefix)
	}
	if changed := restartOnly(old, o); len(changed) != 0 {
		t.Errorf("changing the TCP caps needs a restart of %v; want them applied on reload", changed)
	}
}

// --health-aware is on by default, turns into zones.Config.IgnoreHealth
// and, like the other zone settings, applies on reload.
func TestHealthAwareReload(t *testing.T) {
	rs := &runtimeSettings{level: zap.NewAtomicLevel(), log: zap.NewNop(), qlog: newQueryLog(zap.NewNop(), 0)}
	old := mustParse(t)
	if rs.dnsConfig(old).Zones.IgnoreHealth {
		t.Error("health is ignored by default")
	}
	o := mustParse(t, "--health-aware=false")
	if !rs.dnsConfig(o).Zones.IgnoreHealth {
		t.Error("--health-aware=false does not turn health off")
	}
	if changed := restartOnly(old, o); len(changed) != 0 {
		t.Errorf("changing --health-aware needs a restart of %v; want it applied on reload", changed)
	}
}
