package main

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/internal/etcdclient"
	"github.com/meshdns/meshdns/registry"
)

// The settings table: one entry per setting of meshdns. The flags
// (register), the --config keys (a key per flag), validation, the reload
// on SIGHUP (restartOnly, keepRestartOnly, runtimeSettings.apply), the
// dnsserver.Config (dnsConfig), the start-up log line (logSettings, and
// with it the status page) and the README's flag table
// (TestREADMEFlagTable) are all derived from it. Adding a setting is a
// field in options and an entry here; TestSettingTable checks the entry
// is complete.

// reloadClass says what a changed setting does on SIGHUP.
type reloadClass int

const (
	_ reloadClass = iota // unset: TestSettingTable fails
	// live: the new value applies to the running server (see applier).
	live
	// restart: read once at start; a new value in the file is kept at
	// its running value, with a warning naming the setting.
	restart
)

func (c reloadClass) String() string {
	switch c {
	case live:
		return "live"
	case restart:
		return "restart"
	}
	return "unset"
}

// applier is how a live setting reaches the running server; every one
// of them runs on each reload (runtimeSettings.apply).
type applier int

const (
	_ applier = iota
	// viaServer: setting.server sets dnsserver.Config fields, which
	// dnsserver.Server.Reconfigure swaps atomically.
	viaServer
	// viaForwarder: a new forwarder (and cache) when the upstreams or
	// the cache bounds change (runtimeSettings.setForwarder).
	viaForwarder
	// viaLogger: the atomic log level.
	viaLogger
	// viaQueryLog: the query log's sampling.
	viaQueryLog
	// viaMemory: the GC percentage and the soft memory limit (memoryTuner).
	viaMemory
)

// fromEnv is a default read from the environment when the flags are made.
type fromEnv string

type setting struct {
	name  string
	class reloadClass
	// def is the flag's default: string, []string, bool, int,
	// time.Duration (the type of *field), or fromEnv for a string.
	def  any
	help string
	// field points at the options field the flag sets.
	field func(o *options) any
	// commas: a []string flag takes comma-separated values
	// (--etcd-endpoints a,b); otherwise it is repeatable (--listen a
	// --listen b).
	commas bool
	// docDefault is the README's default when the flag's own default
	// text would mislead (one read from the environment, a derived one).
	docDefault string
	// check validates the value and derives parsed fields (sizes);
	// checks run in table order, then crossChecks.
	check func(o *options) error
	// via: how a live setting applies (more than one: both run).
	via []applier
	// server sets the dnsserver.Config fields of the setting (viaServer;
	// restart settings too, for the server's start).
	server func(o *options, c *dnsserver.Config)
	// log gives the start-up log's fields for the setting; nil: the
	// value under the name with '_' for '-'.
	log func(o *options, endpoints []string) []zap.Field
}

// defaultRateLimit is far above what the machines of one host ask (a /64
// is one org's machines on one host), so only floods meet it.
const defaultRateLimit = 20000

var settingTable = []setting{
	{name: "config", class: restart, def: "", field: func(o *options) any { return &o.config },
		help: "YAML file with settings keyed by flag name; flags given here override it; SIGHUP reloads it"},
	{name: "listen", class: restart, def: []string{"127.0.0.1:1053", "[::1]:1053"}, field: func(o *options) any { return &o.listen },
		help: "address to answer DNS on, UDP and TCP (repeatable)",
		check: func(o *options) error {
			if len(o.listen) == 0 {
				return fmt.Errorf("--listen: at least one address is needed")
			}
			if err := dnsserver.CheckListen(o.listen); err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			return nil
		},
		server: func(o *options, c *dnsserver.Config) { c.Listen = o.listen }},
	{name: "http", class: restart, def: "127.0.0.1:9153", field: func(o *options) any { return &o.http },
		help: "address for /metrics, /healthz and /readyz; empty turns it off",
		check: func(o *options) error {
			if o.http != "" {
				if _, port, err := net.SplitHostPort(o.http); err != nil || port == "" {
					return fmt.Errorf("--http %q: want host:port, e.g. 127.0.0.1:9153, or empty to turn it off", o.http)
				}
			}
			return nil
		}},
	{name: "pprof", class: restart, def: false, field: func(o *options) any { return &o.pprof },
		help: "also serve Go's runtime profiles at /debug/pprof/ on --http (CPU profiles up to 14 s: ?seconds=10)"},
	{name: "etcd-endpoints", class: restart, def: []string(nil), commas: true, field: func(o *options) any { return &o.etcdEndpoints },
		help: "etcd endpoints, comma-separated; empty runs an embedded etcd",
		log: func(_ *options, endpoints []string) []zap.Field {
			return []zap.Field{zap.Strings("etcd_endpoints", endpoints)}
		}},
	{name: "etcd-prefix", class: restart, def: registry.DefaultPrefix, field: func(o *options) any { return &o.etcdPrefix },
		help:  "etcd key prefix of the registry",
		check: func(o *options) error { return etcdclient.CheckPrefix(o.etcdPrefix) }},
	{name: "etcd-cacert", class: restart, def: "", field: func(o *options) any { return &o.etcdCACert },
		help: "CA bundle to verify etcd's server certificates (turns on TLS)",
		log: func(o *options, _ []string) []zap.Field {
			return []zap.Field{zap.Bool("etcd_tls", o.etcdCACert != "" || o.etcdCert != ""), zap.String("etcd_cacert", o.etcdCACert)}
		}},
	{name: "etcd-cert", class: restart, def: "", field: func(o *options) any { return &o.etcdCert },
		help: "client certificate for etcd (with --etcd-key)"},
	{name: "etcd-key", class: restart, def: "", field: func(o *options) any { return &o.etcdKey },
		help: "private key of --etcd-cert"},
	{name: "etcd-user", class: restart, def: "", field: func(o *options) any { return &o.etcdUser },
		help: "etcd user name; the password is read from $" + etcdPasswordEnv},
	{name: "data-dir", class: restart, def: "./meshdns-data", field: func(o *options) any { return &o.dataDir },
		help: "directory for the embedded etcd's data and local state"},
	{name: "embedded-etcd-url", class: restart, def: "http://127.0.0.1:2379", field: func(o *options) any { return &o.embeddedEtcdURL },
		help: "client URL of the embedded etcd"},
	{name: "embedded-etcd-peer-url", class: restart, def: "", field: func(o *options) any { return &o.embeddedEtcdPeerURL },
		docDefault: "client port + 1",
		help:       "peer URL of the embedded etcd (default: client port + 1)"},
	{name: "region", class: live, def: fromEnv("FLY_REGION"), field: func(o *options) any { return &o.region },
		docDefault: "`$FLY_REGION`",
		help:       "this server's region: the asker's region when no machine or peer owns the source (default $FLY_REGION)",
		check: func(o *options) error {
			if o.region != "" {
				if err := registry.CheckRegionCode(o.region); err != nil {
					return fmt.Errorf("--region: %w", err)
				}
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.Zones.ServerRegion = o.region }},
	{name: "default-org", class: live, def: "", field: func(o *options) any { return &o.defaultOrg },
		help: "org of askers whose address is in no org's network (development, single-org installs)",
		check: func(o *options) error {
			if o.defaultOrg != "" {
				return registry.CheckLabel("--default-org", o.defaultOrg)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.DefaultOrg = o.defaultOrg }},
	{name: "ttl", class: live, def: 5 * time.Second, field: func(o *options) any { return &o.ttl },
		help:  "TTL of .internal answers, also the negative TTL unless --negative-ttl is set",
		check: func(o *options) error { return checkTTL("--ttl", o.ttl) },
		via:   []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.Zones.TTL = uint32(o.ttl / time.Second) }},
	{name: "negative-ttl", class: live, def: time.Duration(0), field: func(o *options) any { return &o.negativeTTL },
		help: "TTL of .internal NXDOMAIN/NODATA answers (SOA minimum); 0 means --ttl",
		check: func(o *options) error {
			if o.negativeTTL != 0 {
				return checkTTL("--negative-ttl", o.negativeTTL)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) {
			c.Zones.NegTTL = uint32(o.effectiveNegativeTTL() / time.Second)
		},
		log: func(o *options, _ []string) []zap.Field {
			return []zap.Field{zap.Duration("negative_ttl", o.effectiveNegativeTTL())}
		}},
	{name: "health-aware", class: live, def: true, field: func(o *options) any { return &o.healthAware },
		help: "answer the healthy machines (no critical check) of AAAA names and SRV, all started ones when none is; false: every started machine",
		via:  []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.Zones.IgnoreHealth = !o.healthAware }},
	{name: "upstream", class: live, def: []string(nil), field: func(o *options) any { return &o.upstream },
		help: "resolver for names outside .internal/.flycast (and reverse names outside fdaa::/16), IP[:port] (repeatable, asked in order); none: REFUSED",
		check: func(o *options) error {
			for i, u := range o.upstream {
				addr, err := forward.ParseUpstream(u)
				if err != nil {
					return fmt.Errorf("--upstream: %w", err)
				}
				o.upstream[i] = addr
			}
			return nil
		},
		via: []applier{viaForwarder}},
	{name: "forward-timeout", class: live, def: 2 * time.Second, field: func(o *options) any { return &o.forwardTimeout },
		help: "time a forwarded query may take, all upstreams together, before SERVFAIL",
		check: func(o *options) error {
			if o.forwardTimeout < 10*time.Millisecond || o.forwardTimeout > time.Minute {
				return fmt.Errorf("--forward-timeout %s: must be between 10ms and 1m", o.forwardTimeout)
			}
			return nil
		},
		via: []applier{viaForwarder, viaServer}, server: func(o *options, c *dnsserver.Config) { c.ForwardTimeout = o.forwardTimeout }},
	{name: "forward-cache-size", class: live, def: forward.DefaultCacheSize, field: func(o *options) any { return &o.forwardCacheSize },
		help: "most forwarded answers kept in the cache; 0 turns the cache off",
		check: func(o *options) error {
			if o.forwardCacheSize < 0 {
				return fmt.Errorf("--forward-cache-size %d: must be 0 (no cache) or more", o.forwardCacheSize)
			}
			return nil
		},
		via: []applier{viaForwarder}},
	{name: "forward-cache-bytes", class: live, def: "32MiB", field: func(o *options) any { return &o.forwardCacheBytes },
		help: "most memory the forwarded answers' cache holds, e.g. 64MiB (each org keeps at least an equal share); 0 turns the cache off",
		check: func(o *options) error {
			o.forwardCacheBytesN = 0
			if o.forwardCacheBytes != "0" {
				n, err := parseSize(o.forwardCacheBytes)
				if err != nil {
					return fmt.Errorf("--forward-cache-bytes %w, or 0 (no cache)", err)
				}
				if n < 4<<10 {
					return fmt.Errorf("--forward-cache-bytes %s: want at least 4KiB, or 0 (no cache)", o.forwardCacheBytes)
				}
				o.forwardCacheBytesN = n
			}
			return nil
		},
		via: []applier{viaForwarder},
		log: func(o *options, _ []string) []zap.Field {
			return []zap.Field{zap.Int64("forward_cache_bytes", o.forwardCacheBytesN)}
		}},
	{name: "forward-cache-max-reply", class: live, def: "16KiB", field: func(o *options) any { return &o.forwardCacheMax },
		help: "longest forwarded answer cached, e.g. 16KiB; longer ones are forwarded every time",
		check: func(o *options) error {
			n, err := parseSize(o.forwardCacheMax)
			if err != nil || n < 512 || n > 65535 {
				return fmt.Errorf("--forward-cache-max-reply %q: want a size from 512B to 64KiB, such as 16KiB", o.forwardCacheMax)
			}
			o.forwardCacheMaxN = n
			return nil
		},
		via: []applier{viaForwarder},
		log: func(o *options, _ []string) []zap.Field {
			return []zap.Field{zap.Int64("forward_cache_max_reply", o.forwardCacheMaxN)}
		}},
	{name: "rate-limit", class: live, def: defaultRateLimit, field: func(o *options) any { return &o.rateLimit },
		help: "UDP and TCP queries per second one source prefix (IPv6 /64, IPv4 /24) may send (a TCP connection over it is closed); 0: no limit (load benchmarks from one source)",
		check: func(o *options) error {
			if o.rateLimit < 0 {
				return fmt.Errorf("--rate-limit %d: want 0 (no limit) or a rate per second", o.rateLimit)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.RateLimit = o.rateLimit }},
	{name: "error-rate-limit", class: live, def: 0, field: func(o *options) any { return &o.errorRateLimit },
		help: "REFUSED/NXDOMAIN answers per second one source prefix may get, the rest dropped; 0: --rate-limit/10",
		check: func(o *options) error {
			if o.errorRateLimit < 0 {
				return fmt.Errorf("--error-rate-limit %d: want 0 (--rate-limit/10) or a rate per second", o.errorRateLimit)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.ErrorRateLimit = o.errorRateLimit }},
	{name: "max-tcp-conns", class: live, def: 1000, field: func(o *options) any { return &o.maxTCPConns },
		help: "most TCP connections open at once; at the cap a newcomer replaces a connection of the prefix holding the most",
		check: func(o *options) error {
			if o.maxTCPConns < 1 {
				return fmt.Errorf("--max-tcp-conns %d: want at least 1", o.maxTCPConns)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.MaxTCPConns = o.maxTCPConns }},
	{name: "max-tcp-conns-per-prefix", class: live, def: 50, field: func(o *options) any { return &o.maxTCPConnsPerPfx },
		help: "most TCP connections one source prefix (IPv6 /64, IPv4 /24) holds; a newcomer replaces its oldest idle one",
		check: func(o *options) error {
			if o.maxTCPConnsPerPfx < 1 {
				return fmt.Errorf("--max-tcp-conns-per-prefix %d: want at least 1", o.maxTCPConnsPerPfx)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.MaxTCPConnsPerPrefix = o.maxTCPConnsPerPfx }},
	{name: "rate-limit-slip", class: live, def: 2, field: func(o *options) any { return &o.rateLimitSlip },
		help: "answer every Nth UDP query over a rate limit with a tiny TC=1 reply (question only; a real client retries over TCP) and drop the rest; 0: drop them all",
		check: func(o *options) error {
			if o.rateLimitSlip < 0 {
				return fmt.Errorf("--rate-limit-slip %d: want 0 (drop every query over the limit) or N to answer 1 in N with TC=1", o.rateLimitSlip)
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) {
			// 0 means "off" on the command line, "the default" in the Config.
			c.RateLimitSlip = cmp.Or(o.rateLimitSlip, -1)
		}},
	{name: "answer-cache-size", class: live, def: "64MiB", field: func(o *options) any { return &o.answerCacheSize },
		help: "memory for cached UDP answers, all readers together, e.g. 64MiB; 0 turns the cache off",
		check: func(o *options) error {
			o.answerCacheBytes = 0
			if o.answerCacheSize != "0" {
				n, err := parseSize(o.answerCacheSize)
				if err != nil {
					return fmt.Errorf("--answer-cache-size %w, or 0 to turn the cache off", err)
				}
				o.answerCacheBytes = n
			}
			return nil
		},
		via: []applier{viaServer}, server: func(o *options, c *dnsserver.Config) { c.AnswerCacheBytes = cmp.Or(o.answerCacheBytes, -1) }},
	{name: "udp-blocking", class: restart, def: true, field: func(o *options) any { return &o.udpBlocking },
		help:   "read UDP with one thread per socket blocked in recvmmsg, outside Go's network poller (false: readers through the poller, see --udp-batch)",
		server: func(o *options, c *dnsserver.Config) { c.UDPBlocking = o.udpBlocking }},
	{name: "udp-batch", class: restart, def: true, field: func(o *options) any { return &o.udpBatch },
		help:   "with --udp-blocking=false: read and write UDP in batches (recvmmsg/sendmmsg); false: one system call per packet",
		server: func(o *options, c *dnsserver.Config) { c.UDPBatch = o.udpBatch || o.udpBlocking }},
	{name: "udp-workers", class: restart, def: 0, field: func(o *options) any { return &o.udpWorkers },
		help:   "UDP readers in all, spread over one socket per core; 0: one per socket with --udp-blocking, else 4 per socket",
		server: func(o *options, c *dnsserver.Config) { c.UDPWorkers = o.udpWorkers }},
	{name: "query-log-sample", class: live, def: 0, field: func(o *options) any { return &o.queryLogSample },
		help: "log 1 in N queries at info level; 0 logs none",
		check: func(o *options) error {
			if o.queryLogSample < 0 {
				return fmt.Errorf("--query-log-sample %d: want 0 (off) or N to log 1 in N queries", o.queryLogSample)
			}
			return nil
		},
		via: []applier{viaQueryLog}},
	{name: "reconcile-interval", class: restart, def: 5 * time.Minute, field: func(o *options) any { return &o.reconcileInterval },
		help: "how often to compare the snapshot with etcd and repair drift; 0 turns it off"},
	{name: "load-rate", class: restart, def: 0, field: func(o *options) any { return &o.loadRate },
		help: "most registry keys a second a full load or reconcile reads from etcd, so a fleet reloading together stays within what etcd serves; 0: unpaced",
		check: func(o *options) error {
			if o.loadRate < 0 {
				return fmt.Errorf("--load-rate %d: want 0 (unpaced) or keys a second", o.loadRate)
			}
			return nil
		}},
	{name: "load-jitter", class: restart, def: 5 * time.Second, field: func(o *options) any { return &o.loadJitter },
		help: "each full load from an external etcd waits a random delay below this first, spreading a fleet's loads; 0: none",
		check: func(o *options) error {
			if o.loadJitter < 0 {
				return fmt.Errorf("--load-jitter %s: want 0 (none) or more", o.loadJitter)
			}
			return nil
		}},
	{name: "local-copy-interval", class: restart, def: 30 * time.Second, field: func(o *options) any { return &o.localCopyInterval },
		help: "how often (at most) to save the snapshot to --data-dir for fast restarts; 0 turns it off"},
	{name: "demo", class: restart, def: false, field: func(o *options) any { return &o.demo },
		help: "seed a sample org 'demo' and answer loopback askers as its members"},
	{name: "log-level", class: live, def: "info", field: func(o *options) any { return &o.logLevel },
		help: "log level: debug, info, warn or error",
		check: func(o *options) error {
			if _, err := zapcore.ParseLevel(o.logLevel); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
			}
			return nil
		},
		via: []applier{viaLogger}},
	{name: "log-format", class: restart, def: "auto", field: func(o *options) any { return &o.logFormat },
		help: "log encoding: json (one object a line), console (for people), or auto: console when stderr is a terminal, else json",
		check: func(o *options) error {
			if !slices.Contains([]string{"auto", "json", "console"}, o.logFormat) {
				return fmt.Errorf("--log-format %q: want auto, json or console", o.logFormat)
			}
			return nil
		}},
	{name: "gc-percent", class: live, def: 0, field: func(o *options) any { return &o.gcPercent },
		help: "Go GC percentage (GOGC) while serving; 0: $GOGC if set, else from the live heap (100 up to 256 MiB live, down to 50 from 512 MiB)",
		check: func(o *options) error {
			if o.gcPercent < 0 {
				return fmt.Errorf("--gc-percent %d: want 0 (default) or a percentage", o.gcPercent)
			}
			return nil
		},
		via: []applier{viaMemory}},
	{name: "memory-limit", class: live, def: "auto", field: func(o *options) any { return &o.memoryLimit },
		help: "soft memory limit of the Go runtime, e.g. 1GiB; off: none; auto: $GOMEMLIMIT if set, else 90% of the cgroup's memory limit, if any",
		check: func(o *options) error {
			o.memoryLimitBytes = 0
			if o.memoryLimit != "auto" && o.memoryLimit != "off" {
				n, err := parseSize(o.memoryLimit)
				if err != nil {
					return fmt.Errorf("--memory-limit %w, auto or off", err)
				}
				o.memoryLimitBytes = n
			}
			return nil
		},
		via: []applier{viaMemory}},
}

// register makes a flag of every setting.
func (o *options) register(f *pflag.FlagSet) {
	for _, s := range settingTable {
		switch p := s.field(o).(type) {
		case *string:
			def, ok := s.def.(string)
			if env, isEnv := s.def.(fromEnv); isEnv {
				def, ok = os.Getenv(string(env)), true
			}
			if !ok {
				panic("setting " + s.name + ": default is not a string")
			}
			f.StringVar(p, s.name, def, s.help)
		case *[]string:
			if s.commas {
				f.StringSliceVar(p, s.name, s.def.([]string), s.help)
			} else {
				f.StringArrayVar(p, s.name, s.def.([]string), s.help)
			}
		case *bool:
			f.BoolVar(p, s.name, s.def.(bool), s.help)
		case *int:
			f.IntVar(p, s.name, s.def.(int), s.help)
		case *time.Duration:
			f.DurationVar(p, s.name, s.def.(time.Duration), s.help)
		default:
			panic(fmt.Sprintf("setting %s: options field of type %T", s.name, p))
		}
	}
}

// validate checks every setting, in table order, then the rules across
// settings.
func (o *options) validate() error {
	for _, s := range settingTable {
		if s.check != nil {
			if err := s.check(o); err != nil {
				return err
			}
		}
	}
	return o.crossChecks()
}

// same reports whether a and b hold the same value of s.
func (s setting) same(a, b *options) bool {
	switch p := s.field(a).(type) {
	case *string:
		return *p == *s.field(b).(*string)
	case *[]string:
		return slices.Equal(*p, *s.field(b).(*[]string))
	case *bool:
		return *p == *s.field(b).(*bool)
	case *int:
		return *p == *s.field(b).(*int)
	case *time.Duration:
		return *p == *s.field(b).(*time.Duration)
	}
	panic("setting " + s.name + ": unknown type")
}

// copyFrom sets s in o to its value in from.
func (s setting) copyFrom(o, from *options) {
	switch p := s.field(o).(type) {
	case *string:
		*p = *s.field(from).(*string)
	case *[]string:
		*p = slices.Clone(*s.field(from).(*[]string))
	case *bool:
		*p = *s.field(from).(*bool)
	case *int:
		*p = *s.field(from).(*int)
	case *time.Duration:
		*p = *s.field(from).(*time.Duration)
	default:
		panic("setting " + s.name + ": unknown type")
	}
}

// logFields are the start-up log's fields of s.
func (s setting) logFields(o *options, endpoints []string) []zap.Field {
	if s.log != nil {
		return s.log(o, endpoints)
	}
	key := strings.ReplaceAll(s.name, "-", "_")
	switch p := s.field(o).(type) {
	case *string:
		return []zap.Field{zap.String(key, *p)}
	case *[]string:
		return []zap.Field{zap.Strings(key, *p)}
	case *bool:
		return []zap.Field{zap.Bool(key, *p)}
	case *int:
		return []zap.Field{zap.Int(key, *p)}
	case *time.Duration:
		return []zap.Field{zap.Duration(key, *p)}
	}
	panic("setting " + s.name + ": unknown type")
}

// restartOnly lists the settings that differ between a and b but take
// effect only when meshdns restarts.
func restartOnly(a, b *options) []string {
	var changed []string
	for _, s := range settingTable {
		if s.class == restart && !s.same(a, b) {
			changed = append(changed, s.name)
		}
	}
	return changed
}

// keepRestartOnly copies into o the settings the running process cannot
// change, so the logged configuration says what is really in force.
func keepRestartOnly(o, running *options) {
	for _, s := range settingTable {
		if s.class == restart {
			s.copyFrom(o, running)
		}
	}
}

// restartSettingNames lists the restart settings, for --help.
func restartSettingNames() []string {
	var names []string
	for _, s := range settingTable {
		if s.class == restart && s.name != "config" {
			names = append(names, s.name)
		}
	}
	return names
}
