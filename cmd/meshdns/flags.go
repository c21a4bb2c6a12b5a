package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/registry"
)

// options are meshdns's settings: defaults, then the --config file, then
// the command line, each overriding the one before.
type options struct {
	config              string
	listen              []string
	http                string
	etcdEndpoints       []string
	etcdPrefix          string
	etcdCACert          string
	etcdCert            string
	etcdKey             string
	etcdUser            string
	dataDir             string
	reconcileInterval   time.Duration
	localCopyInterval   time.Duration
	loadRate            int
	loadJitter          time.Duration
	embeddedEtcdURL     string
	embeddedEtcdPeerURL string
	region              string
	defaultOrg          string
	ttl                 time.Duration
	negativeTTL         time.Duration
	healthAware         bool
	upstream            []string
	forwardTimeout      time.Duration
	forwardCacheSize    int
	forwardCacheBytes   string
	forwardCacheMax     string
	forwardCacheBytesN  int64 // --forward-cache-bytes parsed; 0: no cache
	forwardCacheMaxN    int64 // --forward-cache-max-reply parsed
	queryLogSample      int
	rateLimit           int
	errorRateLimit      int
	rateLimitSlip       int
	answerCacheSize     string
	answerCacheBytes    int64 // --answer-cache-size parsed; 0: no cache
	maxTCPConns         int
	maxTCPConnsPerPfx   int
	udpBatch            bool
	udpBlocking         bool
	pprof               bool
	udpWorkers          int
	demo                bool
	logLevel            string
	logFormat           string // auto, json or console
	gcPercent           int
	memoryLimit         string
	memoryLimitBytes    int64 // --memory-limit parsed, when a size
}

// etcdPasswordEnv holds the password of --etcd-user: a password on the
// command line would show in ps and in the unit file.
const etcdPasswordEnv = "MESHDNS_ETCD_PASSWORD"

func newRootCmd(stdout, stderr io.Writer, run func(*options) error) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "meshdns",
		Short: "Authoritative DNS for the .internal zone of a private IPv6 mesh, from a registry in etcd",
		Long: `meshdns answers AAAA and TXT queries for <app>.internal and the other
.internal names from a machine registry kept in etcd, held in memory and
kept current by etcd watches. Other names are forwarded to --upstream
resolvers for askers inside an org.

With no --etcd-endpoints it runs its own single-member etcd (data under
--data-dir) that also listens for clients on --embedded-etcd-url, so
meshctl works against it out of the box. --demo adds a sample org.

Every flag can also be set in a YAML --config file, keyed by the flag's
name (ttl: 5s, upstream: [192.0.2.53]); the command line overrides the
file. SIGHUP reads the file again and applies the settings that can change
while running (TTLs, upstreams, forwarding, rate limits, TCP connection
caps, log level, default org, region, query log).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.config != "" {
				if err := applyConfigFile(cmd.Flags(), o.config); err != nil {
					return err
				}
			}
			if err := o.validate(); err != nil {
				return err
			}
			return run(o)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	o.register(cmd.Flags())
	return cmd
}

// defaultRateLimit is far above what the machines of one host ask (a /64
// is one org's machines on one host), so only floods meet it.
const defaultRateLimit = 20000

func (o *options) register(f *pflag.FlagSet) {
	f.StringVar(&o.config, "config", "", "YAML file with settings keyed by flag name; flags given here override it; SIGHUP reloads it")
	f.StringArrayVar(&o.listen, "listen", []string{"127.0.0.1:1053", "[::1]:1053"}, "address to answer DNS on, UDP and TCP (repeatable)")
	f.StringVar(&o.http, "http", "127.0.0.1:9153", "address for /metrics, /healthz and /readyz; empty turns it off")
	f.BoolVar(&o.pprof, "pprof", false, "also serve Go's runtime profiles at /debug/pprof/ on --http (CPU profiles up to 14 s: ?seconds=10)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "etcd endpoints, comma-separated; empty runs an embedded etcd")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", registry.DefaultPrefix, "etcd key prefix of the registry")
	f.StringVar(&o.etcdCACert, "etcd-cacert", "", "CA bundle to verify etcd's server certificates (turns on TLS)")
	f.StringVar(&o.etcdCert, "etcd-cert", "", "client certificate for etcd (with --etcd-key)")
	f.StringVar(&o.etcdKey, "etcd-key", "", "private key of --etcd-cert")
	f.StringVar(&o.etcdUser, "etcd-user", "", "etcd user name; the password is read from $"+etcdPasswordEnv)
	f.StringVar(&o.dataDir, "data-dir", "./meshdns-data", "directory for the embedded etcd's data and local state")
	f.StringVar(&o.embeddedEtcdURL, "embedded-etcd-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	f.StringVar(&o.embeddedEtcdPeerURL, "embedded-etcd-peer-url", "", "peer URL of the embedded etcd (default: client port + 1)")
	f.StringVar(&o.region, "region", os.Getenv("FLY_REGION"), "this server's region: the asker's region when no machine or peer owns the source (default $FLY_REGION)")
	f.StringVar(&o.defaultOrg, "default-org", "", "org of askers whose address is in no org's network (development, single-org installs)")
	f.DurationVar(&o.ttl, "ttl", 5*time.Second, "TTL of .internal answers, also the negative TTL unless --negative-ttl is set")
	f.DurationVar(&o.negativeTTL, "negative-ttl", 0, "TTL of .internal NXDOMAIN/NODATA answers (SOA minimum); 0 means --ttl")
	f.BoolVar(&o.healthAware, "health-aware", true, "answer the healthy machines (no critical check) of AAAA names and SRV, all started ones when none is; false: every started machine")
	f.StringArrayVar(&o.upstream, "upstream", nil, "resolver for names outside .internal/.flycast, IP[:port] (repeatable, asked in order); none: REFUSED")
	f.DurationVar(&o.forwardTimeout, "forward-timeout", 2*time.Second, "time a forwarded query may take, all upstreams together, before SERVFAIL")
	f.IntVar(&o.forwardCacheSize, "forward-cache-size", forward.DefaultCacheSize, "most forwarded answers kept in the cache; 0 turns the cache off")
	f.StringVar(&o.forwardCacheBytes, "forward-cache-bytes", "32MiB", "most memory the forwarded answers' cache holds, e.g. 64MiB (each org keeps at least an equal share); 0 turns the cache off")
	f.StringVar(&o.forwardCacheMax, "forward-cache-max-reply", "16KiB", "longest forwarded answer cached, e.g. 16KiB; longer ones are forwarded every time")
	f.IntVar(&o.rateLimit, "rate-limit", defaultRateLimit, "UDP and TCP queries per second one source prefix (IPv6 /64, IPv4 /24) may send (a TCP connection over it is closed); 0: no limit (load benchmarks from one source)")
	f.IntVar(&o.errorRateLimit, "error-rate-limit", 0, "REFUSED/NXDOMAIN answers per second one source prefix may get, the rest dropped; 0: --rate-limit/10")
	f.IntVar(&o.maxTCPConns, "max-tcp-conns", 1000, "most TCP connections open at once; at the cap a newcomer replaces a connection of the prefix holding the most")
	f.IntVar(&o.maxTCPConnsPerPfx, "max-tcp-conns-per-prefix", 50, "most TCP connections one source prefix (IPv6 /64, IPv4 /24) holds; a newcomer replaces its oldest idle one")
	f.IntVar(&o.rateLimitSlip, "rate-limit-slip", 2, "answer every Nth UDP query over a rate limit with a tiny TC=1 reply (question only; a real client retries over TCP) and drop the rest; 0: drop them all")
	f.StringVar(&o.answerCacheSize, "answer-cache-size", "64MiB", "memory for cached UDP answers, all readers together, e.g. 64MiB; 0 turns the cache off")
	f.BoolVar(&o.udpBlocking, "udp-blocking", true, "read UDP with one thread per socket blocked in recvmmsg, outside Go's network poller (false: readers through the poller, see --udp-batch)")
	f.BoolVar(&o.udpBatch, "udp-batch", true, "with --udp-blocking=false: read and write UDP in batches (recvmmsg/sendmmsg); false: one system call per packet")
	f.IntVar(&o.udpWorkers, "udp-workers", 0, "UDP readers in all, spread over one socket per core; 0: one per socket with --udp-blocking, else 4 per socket")
	f.IntVar(&o.queryLogSample, "query-log-sample", 0, "log 1 in N queries at info level; 0 logs none")
	f.DurationVar(&o.reconcileInterval, "reconcile-interval", 5*time.Minute, "how often to compare the snapshot with etcd and repair drift; 0 turns it off")
	f.IntVar(&o.loadRate, "load-rate", 0, "most registry keys a second a full load or reconcile reads from etcd, so a fleet reloading together stays within what etcd serves; 0: unpaced")
	f.DurationVar(&o.loadJitter, "load-jitter", 5*time.Second, "each full load from an external etcd waits a random delay below this first, spreading a fleet's loads; 0: none")
	f.DurationVar(&o.localCopyInterval, "local-copy-interval", 30*time.Second, "how often (at most) to save the snapshot to --data-dir for fast restarts; 0 turns it off")
	f.BoolVar(&o.demo, "demo", false, "seed a sample org 'demo' and answer loopback askers as its members")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "auto", "log encoding: json (one object a line), console (for people), or auto: console when stderr is a terminal, else json")
	f.IntVar(&o.gcPercent, "gc-percent", 0, "Go GC percentage (GOGC) while serving; 0: $GOGC if set, else from the live heap (100 up to 256 MiB live, down to 50 from 512 MiB)")
	f.StringVar(&o.memoryLimit, "memory-limit", "auto", "soft memory limit of the Go runtime, e.g. 1GiB; off: none; auto: $GOMEMLIMIT if set, else 90% of the cgroup's memory limit, if any")
}

func (o *options) validate() error {
	if len(o.listen) == 0 {
		return fmt.Errorf("--listen: at least one address is needed")
	}
	if err := checkTTL("--ttl", o.ttl); err != nil {
		return err
	}
	if o.negativeTTL != 0 {
		if err := checkTTL("--negative-ttl", o.negativeTTL); err != nil {
			return err
		}
	}
	if _, err := zapcore.ParseLevel(o.logLevel); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	if !slices.Contains([]string{"auto", "json", "console"}, o.logFormat) {
		return fmt.Errorf("--log-format %q: want auto, json or console", o.logFormat)
	}
	if o.region != "" {
		if err := registry.CheckRegionCode(o.region); err != nil {
			return fmt.Errorf("--region: %w", err)
		}
	}
	if o.defaultOrg != "" {
		if err := registry.CheckLabel("--default-org", o.defaultOrg); err != nil {
			return err
		}
	}
	if o.http != "" {
		if _, port, err := net.SplitHostPort(o.http); err != nil || port == "" {
			return fmt.Errorf("--http %q: want host:port, e.g. 127.0.0.1:9153, or empty to turn it off", o.http)
		}
	}
	if err := o.validateForwarding(); err != nil {
		return err
	}
	if o.queryLogSample < 0 {
		return fmt.Errorf("--query-log-sample %d: want 0 (off) or N to log 1 in N queries", o.queryLogSample)
	}
	if o.rateLimit < 0 || o.errorRateLimit < 0 {
		return fmt.Errorf("--rate-limit %d, --error-rate-limit %d: want 0 (default) or a rate per second", o.rateLimit, o.errorRateLimit)
	}
	if o.rateLimitSlip < 0 {
		return fmt.Errorf("--rate-limit-slip %d: want 0 (drop every query over the limit) or N to answer 1 in N with TC=1", o.rateLimitSlip)
	}
	if o.answerCacheSize == "0" {
		o.answerCacheBytes = 0
	} else {
		n, err := parseSize(o.answerCacheSize)
		if err != nil {
			return fmt.Errorf("--answer-cache-size %w, or 0 to turn the cache off", err)
		}
		o.answerCacheBytes = n
	}
	if o.gcPercent < 0 {
		return fmt.Errorf("--gc-percent %d: want 0 (default) or a percentage", o.gcPercent)
	}
	if o.memoryLimit != "auto" && o.memoryLimit != "off" {
		n, err := parseSize(o.memoryLimit)
		if err != nil {
			return fmt.Errorf("--memory-limit %w, auto or off", err)
		}
		o.memoryLimitBytes = n
	}
	if o.loadRate < 0 || o.loadJitter < 0 {
		return fmt.Errorf("--load-rate %d, --load-jitter %s: want 0 (off) or more", o.loadRate, o.loadJitter)
	}
	if o.maxTCPConns < 1 {
		return fmt.Errorf("--max-tcp-conns %d: want at least 1", o.maxTCPConns)
	}
	if o.maxTCPConnsPerPfx < 1 {
		return fmt.Errorf("--max-tcp-conns-per-prefix %d: want at least 1", o.maxTCPConnsPerPfx)
	}
	if !strings.HasPrefix(o.etcdPrefix, "/") || !strings.HasSuffix(o.etcdPrefix, "/") {
		return fmt.Errorf("--etcd-prefix %q: must start and end with '/'", o.etcdPrefix)
	}
	if err := o.validateEtcd(); err != nil {
		return err
	}
	if len(o.etcdEndpoints) == 0 {
		u, err := url.Parse(o.embeddedEtcdURL)
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			return fmt.Errorf("--embedded-etcd-url %q: want http://host:port", o.embeddedEtcdURL)
		}
		if o.embeddedEtcdPeerURL == "" {
			port, _ := strconv.Atoi(u.Port())
			o.embeddedEtcdPeerURL = fmt.Sprintf("http://%s:%d", u.Hostname(), port+1)
		}
	}
	if o.demo {
		// --demo answers loopback askers as members of the demo org and
		// places the server in ams, unless told otherwise.
		if o.defaultOrg == "" {
			o.defaultOrg = demoOrg
		}
		if o.region == "" {
			o.region = "ams"
		}
	}
	return nil
}

func checkTTL(flag string, d time.Duration) error {
	if d < time.Second || d > 24*time.Hour {
		return fmt.Errorf("%s %s: must be between 1s and 24h", flag, d)
	}
	if d%time.Second != 0 {
		return fmt.Errorf("%s %s: DNS TTLs are whole seconds", flag, d)
	}
	return nil
}

func (o *options) validateForwarding() error {
	for i, u := range o.upstream {
		addr, err := forward.ParseUpstream(u)
		if err != nil {
			return fmt.Errorf("--upstream: %w", err)
		}
		o.upstream[i] = addr
	}
	if o.forwardTimeout < 10*time.Millisecond || o.forwardTimeout > time.Minute {
		return fmt.Errorf("--forward-timeout %s: must be between 10ms and 1m", o.forwardTimeout)
	}
	if o.forwardCacheSize < 0 {
		return fmt.Errorf("--forward-cache-size %d: must be 0 (no cache) or more", o.forwardCacheSize)
	}
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
	n, err := parseSize(o.forwardCacheMax)
	if err != nil || n < 512 || n > 65535 {
		return fmt.Errorf("--forward-cache-max-reply %q: want a size from 512B to 64KiB, such as 16KiB", o.forwardCacheMax)
	}
	o.forwardCacheMaxN = n
	return nil
}

func (o *options) validateEtcd() error {
	tls := o.etcdCACert != "" || o.etcdCert != "" || o.etcdKey != ""
	if (o.etcdCert == "") != (o.etcdKey == "") {
		return fmt.Errorf("--etcd-cert and --etcd-key: give both (the client certificate and its private key) or neither")
	}
	if len(o.etcdEndpoints) == 0 {
		if tls || o.etcdUser != "" {
			return fmt.Errorf("--etcd-cacert, --etcd-cert, --etcd-key and --etcd-user are for an external etcd: give --etcd-endpoints too")
		}
		return nil
	}
	for _, ep := range o.etcdEndpoints {
		if strings.TrimSpace(ep) == "" {
			return fmt.Errorf("--etcd-endpoints %q: empty endpoint", strings.Join(o.etcdEndpoints, ","))
		}
		// The client would talk plain text to an http:// endpoint even
		// with TLS configured, sending the password in the clear.
		if tls && strings.HasPrefix(ep, "http://") {
			return fmt.Errorf("--etcd-endpoints %q: plain http, but TLS flags are given; use https://", ep)
		}
	}
	if o.etcdUser != "" {
		if strings.Contains(o.etcdUser, ":") {
			return fmt.Errorf("--etcd-user: give only the user name; put the password in $%s", etcdPasswordEnv)
		}
		if os.Getenv(etcdPasswordEnv) == "" {
			return fmt.Errorf("--etcd-user %s: no password; set $%s", o.etcdUser, etcdPasswordEnv)
		}
	}
	return nil
}
