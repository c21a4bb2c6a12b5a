package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshdns/meshdns/internal/etcdclient"
)

// options are meshdns's settings: defaults, then the --config file, then
// the command line, each overriding the one before.
// Each field is set by one entry of settingTable (settingtable.go), but
// the parsed ones noted here, which a setting's check derives.
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
// It is the one meshctl reads too (internal/etcdclient).
const etcdPasswordEnv = etcdclient.PasswordEnv

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
while running; these keep their running value until a restart:
` + wrap(strings.Join(restartSettingNames(), ", ")+".", 72),
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

// crossChecks are the rules across settings, after each setting's own
// check (settingTable).
func (o *options) crossChecks() error {
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

func (o *options) validateEtcd() error {
	if err := o.etcdSettings(nil).CheckCertKey(); err != nil {
		return err
	}
	if len(o.etcdEndpoints) == 0 {
		if o.etcdSettings(nil).TLS() || o.etcdUser != "" {
			return fmt.Errorf("--etcd-cacert, --etcd-cert, --etcd-key and --etcd-user are for an external etcd: give --etcd-endpoints too")
		}
		return nil
	}
	// The checks meshctl makes too: cert with key, no empty or (with
	// TLS) plain-http endpoint, a user with its password.
	return o.etcdSettings(o.etcdEndpoints).Check()
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
