package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"

	"github.com/meshdns/meshdns/registry"
)

// options are meshdns's settings, as given on the command line.
type options struct {
	listen              []string
	etcdEndpoints       []string
	etcdPrefix          string
	dataDir             string
	embeddedEtcdURL     string
	embeddedEtcdPeerURL string
	region              string
	defaultOrg          string
	ttl                 time.Duration
	demo                bool
	logLevel            string
}

func newRootCmd(stdout, stderr io.Writer, run func(*options) error) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "meshdns",
		Short: "Authoritative DNS for the .internal zone of a private IPv6 mesh, from a registry in etcd",
		Long: `meshdns answers AAAA and TXT queries for <app>.internal and the other
.internal names from a machine registry kept in etcd, held in memory and
kept current by etcd watches.

With no --etcd-endpoints it runs its own single-member etcd (data under
--data-dir) that also listens for clients on --embedded-etcd-url, so
meshctl works against it out of the box. --demo adds a sample org.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return run(o)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringArrayVar(&o.listen, "listen", []string{"127.0.0.1:1053", "[::1]:1053"}, "address to answer DNS on, UDP and TCP (repeatable)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "etcd endpoints, comma-separated; empty runs an embedded etcd")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", registry.DefaultPrefix, "etcd key prefix of the registry")
	f.StringVar(&o.dataDir, "data-dir", "./meshdns-data", "directory for the embedded etcd's data and local state")
	f.StringVar(&o.embeddedEtcdURL, "embedded-etcd-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	f.StringVar(&o.embeddedEtcdPeerURL, "embedded-etcd-peer-url", "", "peer URL of the embedded etcd (default: client port + 1)")
	f.StringVar(&o.region, "region", os.Getenv("FLY_REGION"), "this server's region: the asker's region when no machine or peer owns the source (default $FLY_REGION)")
	f.StringVar(&o.defaultOrg, "default-org", "", "org of askers whose address is in no org's network (development, single-org installs)")
	f.DurationVar(&o.ttl, "ttl", 5*time.Second, "TTL of .internal answers, also the negative TTL")
	f.BoolVar(&o.demo, "demo", false, "seed a sample org 'demo' and answer loopback askers as its members")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func (o *options) validate() error {
	if len(o.listen) == 0 {
		return fmt.Errorf("--listen: at least one address is needed")
	}
	if o.ttl < time.Second || o.ttl > 24*time.Hour {
		return fmt.Errorf("--ttl %s: must be between 1s and 24h", o.ttl)
	}
	if o.ttl%time.Second != 0 {
		return fmt.Errorf("--ttl %s: DNS TTLs are whole seconds", o.ttl)
	}
	if _, err := zapcore.ParseLevel(o.logLevel); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
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
	if !strings.HasPrefix(o.etcdPrefix, "/") || !strings.HasSuffix(o.etcdPrefix, "/") {
		return fmt.Errorf("--etcd-prefix %q: must start and end with '/'", o.etcdPrefix)
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
	return nil
}
