package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "meshdns.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileSetsEveryKindOfFlag(t *testing.T) {
	p := writeConfig(t, `
listen: ["127.0.0.1:53", "[::1]:53"]
etcd-endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
ttl: 7s
negative-ttl: 3s
upstream:
  - 192.0.2.53
  - "[2001:db8::53]:5353"
forward-timeout: 1500ms
forward-cache-size: 1000000
query-log-sample: 100
region: ams
demo: false
log-level: warn
`)
	o, err := parseOptions([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.listen, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("listen %v", o.listen)
	}
	if !slices.Equal(o.etcdEndpoints, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) {
		t.Errorf("etcd-endpoints %v", o.etcdEndpoints)
	}
	if o.ttl != 7*time.Second || o.negativeTTL != 3*time.Second || o.forwardTimeout != 1500*time.Millisecond {
		t.Errorf("durations: ttl %v negative-ttl %v forward-timeout %v", o.ttl, o.negativeTTL, o.forwardTimeout)
	}
	if !slices.Equal(o.upstream, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}) {
		t.Errorf("upstream %v", o.upstream)
	}
	if o.forwardCacheSize != 1000000 || o.queryLogSample != 100 || o.region != "ams" || o.logLevel != "warn" {
		t.Errorf("options %+v", o)
	}
}

func TestCommandLineOverridesTheFile(t *testing.T) {
	p := writeConfig(t, "ttl: 7s\nupstream: [192.0.2.1, 192.0.2.2]\nregion: ams\n")
	o, err := parseOptions([]string{"--ttl", "9s", "--config", p, "--upstream", "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	if o.ttl != 9*time.Second {
		t.Errorf("ttl %v, want the command line's 9s", o.ttl)
	}
	if !slices.Equal(o.upstream, []string{"192.0.2.9:53"}) {
		t.Errorf("upstream %v, want only the command line's", o.upstream)
	}
	if o.region != "ams" {
		t.Errorf("region %q, want the file's ams", o.region)
	}
}

func TestBadConfigFilesAreRejectedWithTheFileAndTheProblem(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown key", "ttll: 5s\n", `unknown key "ttll"`},
		{"config in config", "config: other.yaml\n", `unknown key "config"`},
		{"bad duration", "ttl: 5\n", `ttl: time: missing unit`},
		{"bad number", "query-log-sample: often\n", "query-log-sample"},
		{"list for a scalar", "ttl: [5s]\n", "ttl: takes one value"},
		{"mapping value", "region: {code: ams}\n", "region: want a plain value, not a mapping"},
		{"duplicate key", "ttl: 5s\nttl: 6s\n", `"ttl" already set`},
		{"not a mapping", "- ttl\n", "want a mapping"},
		{"not YAML", "ttl: [5s\n", "yaml"},
		{"valid YAML, invalid setting", "ttl: 0s\n", "--ttl 0s: must be between 1s and 24h"},
		{"bad upstream", "upstream: [resolver.example]\n", "--upstream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := parseOptions([]string{"--config", p})
			if err == nil {
				t.Fatalf("accepted %q", tc.text)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", err, tc.want)
			}
			if !strings.HasPrefix(tc.want, "--") && !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := parseOptions([]string{"--config", "/nonexistent/meshdns.yaml"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/meshdns.yaml") {
		t.Errorf("error %v, want one naming the file", err)
	}
}

func TestEmptyConfigFileSetsNothing(t *testing.T) {
	o, err := parseOptions([]string{"--config", writeConfig(t, "# nothing yet\n")})
	if err != nil {
		t.Fatal(err)
	}
	if o.ttl != 5*time.Second {
		t.Errorf("ttl %v, want the default", o.ttl)
	}
}

// Every flag can be set in the file: a key per flag, none left out.
func TestEveryFlagIsAConfigKey(t *testing.T) {
	cmd := newRootCmd(nil, nil, func(*options) error { return nil })
	var keys []string
	cmd.Flags().VisitAll(func(f *pflagFlag) {
		if f.Name != "config" && f.Name != "help" {
			keys = append(keys, f.Name)
		}
	})
	for _, k := range keys {
		f := cmd.Flags().Lookup(k)
		if err := setFlag(cmd.Flags(), k, f.DefValue); err != nil && !strings.Contains(err.Error(), "list") {
			t.Errorf("key %s: %v", k, err)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A value reaches the flag's parser as the file writes it: YAML 1.1 would
// read off, yes and on as booleans (and did: "memory-limit: off" was
// rejected) and 1e3 as a number.
func TestConfigValuesAreReadAsTheFlagReadsThem(t *testing.T) {
	p := writeConfig(t, `
memory-limit: off
default-org: "on"
region: yes
log-level: "warn"
answer-cache-size: 1e3
listen: [127.0.0.1:53, "[::1]:53"]
upstream:
  - &r1 192.0.2.1
  - *r1
demo: no
udp-batch: off
health-aware: False
`)
	o, err := parseOptions([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if o.memoryLimit != "off" || o.defaultOrg != "on" || o.region != "yes" || o.logLevel != "warn" {
		t.Errorf("memory-limit %q default-org %q region %q log-level %q; want off, on, yes, warn", o.memoryLimit, o.defaultOrg, o.region, o.logLevel)
	}
	if o.answerCacheBytes != 1000 {
		t.Errorf("answer-cache-size %d bytes; want 1000, as written", o.answerCacheBytes)
	}
	if !slices.Equal(o.upstream, []string{"192.0.2.1:53", "192.0.2.1:53"}) || !slices.Equal(o.listen, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("upstream %v listen %v", o.upstream, o.listen)
	}
	// The words YAML 1.1 took for booleans still set boolean flags.
	if o.demo || o.udpBatch || o.healthAware {
		t.Errorf("demo %v udp-batch %v health-aware %v; want all false", o.demo, o.udpBatch, o.healthAware)
	}
	// A string flag does not take a quoted boolean word as a boolean.
	if _, err := parseOptions([]string{"--config", writeConfig(t, "demo: \"no\"\n")}); err == nil || !strings.Contains(err.Error(), "demo") {
		t.Errorf("demo: \"no\" (quoted): %v; want an error naming demo", err)
	}
}
