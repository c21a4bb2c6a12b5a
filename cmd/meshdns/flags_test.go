package main

import (
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdclient/etcdclienttest"
)

func TestFlagValidation(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--http", "9153"}, "--http"},
		{[]string{"--listen", "localhost:53"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:53", "--listen", "0.0.0.0:53"}, "--listen: listen addresses 127.0.0.1:53 and 0.0.0.0:53 overlap"},
		{[]string{"--upstream", "dns.example"}, "--upstream"},
		{[]string{"--forward-timeout", "0s"}, "--forward-timeout"},
		{[]string{"--forward-cache-bytes", "lots"}, "--forward-cache-bytes"},
		{[]string{"--forward-cache-bytes", "100B"}, "--forward-cache-bytes"},
		{[]string{"--forward-cache-max-reply", "1MiB"}, "--forward-cache-max-reply"},
		{[]string{"--negative-ttl", "1500ms"}, "--negative-ttl"},
		{[]string{"--query-log-sample", "-1"}, "--query-log-sample"},
		{[]string{"--memory-limit", "lots"}, "--memory-limit"},
		{[]string{"--memory-limit", "-1GiB"}, "--memory-limit"},
		{[]string{"--gc-percent", "-5"}, "--gc-percent"},
		{[]string{"--log-format", "text"}, "--log-format"},
		{[]string{"--max-tcp-conns-per-prefix", "0"}, "--max-tcp-conns-per-prefix"},
		{[]string{"--rate-limit-slip", "-1"}, "--rate-limit-slip"},
		{[]string{"--answer-cache-size", "big"}, "--answer-cache-size"},
		{[]string{"--answer-cache-size", "-64MiB"}, "--answer-cache-size"},
		{[]string{"--load-rate", "-1"}, "--load-rate"},
		{[]string{"--load-jitter", "-1s"}, "--load-jitter"},
		{[]string{"--etcd-cert", "c.pem"}, "--etcd-cert and --etcd-key"},
		{[]string{"--etcd-cacert", "ca.pem"}, "external etcd"},
		{[]string{"--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-cacert", "ca.pem"}, "plain http"},
		{[]string{"--etcd-endpoints", "https://10.0.0.1:2379", "--etcd-user", "root:secret"}, "only the user name"},
		{[]string{"--etcd-endpoints", "https://10.0.0.1:2379", "--etcd-user", "root"}, etcdPasswordEnv},
	}
	t.Setenv(etcdPasswordEnv, "")
	for _, tc := range tests {
		_, err := parseOptions(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestEtcdUserTakesThePasswordFromTheEnvironment(t *testing.T) {
	t.Setenv(etcdPasswordEnv, "s3cret")
	o, err := parseOptions([]string{"--etcd-endpoints", "https://10.0.0.1:2379", "--etcd-user", "meshdns"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := etcdClientConfig(o, o.etcdEndpoints, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "meshdns" || cfg.Password != "s3cret" {
		t.Errorf("user %q password %q", cfg.Username, cfg.Password)
	}
}

// Every host of a fleet has the same --etcd-endpoints; each must get them in
// its own order, so that the fleet does not pile onto the first one.
func TestEtcdEndpointsShuffledPerHost(t *testing.T) {
	eps := []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"}
	o, err := parseOptions([]string{"--etcd-endpoints", strings.Join(eps, ",")})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]int{}
	for range 300 {
		cfg, err := etcdClientConfig(o, o.etcdEndpoints, nopLogger())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.Endpoints, ","); len(cfg.Endpoints) != 3 || !strings.Contains(got, eps[0]) ||
			!strings.Contains(got, eps[1]) || !strings.Contains(got, eps[2]) {
			t.Fatalf("endpoints %v are not a permutation of %v", cfg.Endpoints, eps)
		}
		first[cfg.Endpoints[0]]++
	}
	// Each comes first about 100 times; missing one in 300 draws has
	// probability 3·(2/3)^300, about 10^-52.
	for _, ep := range eps {
		if first[ep] == 0 {
			t.Errorf("%s never came first in 300 configurations: %v", ep, first)
		}
	}
	if strings.Join(o.etcdEndpoints, ",") != strings.Join(eps, ",") {
		t.Errorf("the options' endpoints were reordered: %v", o.etcdEndpoints)
	}
}

func TestDemoDefaults(t *testing.T) {
	o, err := parseOptions([]string{"--demo"})
	if err != nil {
		t.Fatal(err)
	}
	if o.defaultOrg != demoOrg || o.region != "ams" {
		t.Errorf("--demo: default org %q region %q, want demo and ams", o.defaultOrg, o.region)
	}
}

func TestMemoryLimitSizes(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "512MiB": 512 << 20, "1.5GiB": 3 << 29, "4096": 4096, "64KiB": 64 << 10} {
		o, err := parseOptions([]string{"--memory-limit", in})
		if err != nil || o.memoryLimitBytes != want {
			t.Errorf("--memory-limit %s: %d, %v; want %d", in, o.memoryLimitBytes, err, want)
		}
	}
	for _, in := range []string{"auto", "off"} {
		if o, err := parseOptions([]string{"--memory-limit", in}); err != nil || o.memoryLimitBytes != 0 {
			t.Errorf("--memory-limit %s: %v", in, err)
		}
	}
}

func TestAutoGCPercent(t *testing.T) {
	for live, want := range map[uint64]int{0: 100, 40 << 20: 100, 256 << 20: 100, 415e6: 64, 512 << 20: 50, 4 << 30: 50} {
		if got := autoGCPercent(live); got != want {
			t.Errorf("autoGCPercent(%d) = %d, want %d", live, got, want)
		}
	}
}

// The forwarding cache's byte bounds take sizes; 0 turns the cache off.
func TestForwardCacheSizes(t *testing.T) {
	o, err := parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.forwardCacheBytesN != 32<<20 || o.forwardCacheMaxN != 16<<10 {
		t.Errorf("defaults: %d bytes, largest reply %d; want 32MiB and 16KiB", o.forwardCacheBytesN, o.forwardCacheMaxN)
	}
	o, err = parseOptions([]string{"--forward-cache-bytes", "0", "--forward-cache-max-reply", "4KiB"})
	if err != nil {
		t.Fatal(err)
	}
	if o.forwardCacheBytesN != 0 || o.forwardCacheMaxN != 4096 {
		t.Errorf("got %d bytes, largest reply %d; want 0 and 4096", o.forwardCacheBytesN, o.forwardCacheMaxN)
	}
}

func TestAnswerCacheSizeAndSlip(t *testing.T) {
	rs := &runtimeSettings{log: nopLogger()}
	for _, tc := range []struct {
		args  []string
		bytes int64
		slip  int
	}{
		{nil, 64 << 20, 2},
		{[]string{"--answer-cache-size", "16MiB", "--rate-limit-slip", "3"}, 16 << 20, 3},
		{[]string{"--answer-cache-size", "0", "--rate-limit-slip", "0"}, -1, -1}, // off
	} {
		o, err := parseOptions(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg := rs.dnsConfig(o); cfg.AnswerCacheBytes != tc.bytes || cfg.RateLimitSlip != tc.slip {
			t.Errorf("%v: cache %d bytes, slip %d; want %d, %d", tc.args, cfg.AnswerCacheBytes, cfg.RateLimitSlip, tc.bytes, tc.slip)
		}
	}
}

// TestSameClientConfigAsMeshctl: from the same canonical etcd flags and
// password variable, meshdns builds the configuration the shared builder
// does; cmd/meshctl's TestSameClientConfigAsMeshdns checks meshctl against
// the same builder and flags.
func TestSameClientConfigAsMeshctl(t *testing.T) {
	args := etcdclienttest.Canonical(t)
	o, err := parseOptions(args)
	if err != nil {
		t.Fatal(err)
	}
	got, err := etcdClientConfig(o, o.etcdEndpoints, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	etcdclienttest.Compare(t, got, etcdclienttest.Want(t, args))
}
