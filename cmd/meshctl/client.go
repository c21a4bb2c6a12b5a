package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// passwordEnv holds the etcd password when --user names only the user, so
// the password does not show up in ps output or shell history.
const passwordEnv = "MESHCTL_PASSWORD"

// globalFlags are the flags every command takes: where etcd is, how to
// authenticate, and how long to wait.
type globalFlags struct {
	endpoints   []string
	prefix      string
	cacert      string
	cert        string
	key         string
	user        string
	dialTimeout time.Duration
	timeout     time.Duration
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&g.endpoints, "etcd-endpoints", []string{"127.0.0.1:2379"}, "etcd client endpoints, comma-separated (https:// or no scheme for TLS)")
	fs.StringVar(&g.prefix, "etcd-prefix", registry.DefaultPrefix, "key prefix the registry lives under; must end with /")
	fs.StringVar(&g.cacert, "cacert", "", "CA bundle to verify etcd's server certificate")
	fs.StringVar(&g.cert, "cert", "", "client certificate for etcd (with --key)")
	fs.StringVar(&g.key, "key", "", "private key of the client certificate")
	fs.StringVar(&g.user, "user", "", "etcd user as NAME or NAME:PASSWORD; without a password, $"+passwordEnv+" is used")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 5*time.Second, "how long to wait for etcd to answer at all")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "how long the whole command may take")
}

// clientConfig turns the flags into a client configuration, reading the TLS
// files. Its errors name the flag at fault.
func (g *globalFlags) clientConfig() (clientv3.Config, error) {
	cfg := clientv3.Config{
		DialTimeout: g.dialTimeout,
		// The client's default logger writes retry chatter to stderr, which
		// would break the one-line error contract; errors reach us as values.
		Logger: zap.NewNop(),
	}
	if g.dialTimeout <= 0 {
		return cfg, fmt.Errorf("--dial-timeout %s: must be positive", g.dialTimeout)
	}
	if g.timeout <= 0 {
		return cfg, fmt.Errorf("--timeout %s: must be positive", g.timeout)
	}
	if !strings.HasSuffix(g.prefix, "/") {
		return cfg, fmt.Errorf("--etcd-prefix %q: must end with / (the default is %s)", g.prefix, registry.DefaultPrefix)
	}
	for _, ep := range g.endpoints {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			return cfg, fmt.Errorf("--etcd-endpoints %q: empty endpoint; give host:port, comma-separated", strings.Join(g.endpoints, ","))
		}
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, errors.New("--etcd-endpoints: no endpoint given")
	}

	if (g.cert == "") != (g.key == "") {
		return cfg, errors.New("--cert and --key: give both (the client certificate and its private key) or neither")
	}
	if g.cacert != "" || g.cert != "" {
		// The client silently talks plain text to http:// endpoints even
		// with TLS configured; refuse rather than send credentials in clear.
		for _, ep := range cfg.Endpoints {
			if strings.HasPrefix(ep, "http://") {
				return cfg, fmt.Errorf("--etcd-endpoints %q: plain http, but TLS flags are given; use https:// or no scheme", ep)
			}
		}
		info := transport.TLSInfo{CertFile: g.cert, KeyFile: g.key, TrustedCAFile: g.cacert}
		tlsCfg, err := info.ClientConfig()
		if err != nil {
			return cfg, fmt.Errorf("TLS from --cacert %q --cert %q --key %q: %w", g.cacert, g.cert, g.key, err)
		}
		cfg.TLS = tlsCfg
	}

	if g.user != "" {
		name, password, hasPassword := strings.Cut(g.user, ":")
		if !hasPassword {
			password = os.Getenv(passwordEnv)
		}
		if name == "" {
			return cfg, fmt.Errorf("--user %q: empty user name; give NAME or NAME:PASSWORD", g.user)
		}
		if password == "" {
			return cfg, fmt.Errorf("--user %s: no password; give --user %s:PASSWORD or set %s", name, name, passwordEnv)
		}
		cfg.Username, cfg.Password = name, password
	}
	return cfg, nil
}

// session is one command's connection to etcd.
type session struct {
	cli *clientv3.Client
	w   *registry.Writer
}

// withEtcd connects to etcd and runs f, all within --timeout. Commands call
// it only after checking their own arguments, so a rejected write never
// needs a working etcd to be reported.
func (g *globalFlags) withEtcd(ctx context.Context, f func(ctx context.Context, s *session) error) error {
	cfg, err := g.clientConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	cfg.Context = ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		// With --user, New already talks to etcd to authenticate.
		return fmt.Errorf("connect to etcd at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	defer cli.Close()

	// The client dials lazily and every request waits for a connection, so
	// without this probe an unreachable etcd would only show as a timeout
	// after the whole --timeout. Reading one key is cheap and also proves
	// that the cluster has a leader and that we may read the registry.
	probeCtx, probeCancel := context.WithTimeout(ctx, g.dialTimeout)
	_, err = cli.Get(probeCtx, g.prefix, clientv3.WithCountOnly())
	probeCancel()
	eps := strings.Join(cfg.Endpoints, ",")
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("etcd at %s did not answer within --dial-timeout %s; check that etcd runs there and --etcd-endpoints", eps, g.dialTimeout)
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("etcd at %s requires authentication: give --user NAME and the password in $%s", eps, passwordEnv)
	case err != nil:
		return fmt.Errorf("etcd at %s: %w", eps, err)
	}

	err = f(ctx, &session{cli: cli, w: registry.NewWriter(cli, g.prefix)})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("%w (the command ran out of --timeout %s; raise it for large loads)", err, g.timeout)
	}
	return err
}
