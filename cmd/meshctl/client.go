package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/etcdclient"
	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// oldPasswordEnv is the variable meshctl read the etcd password from before
// both programs read $MESHDNS_ETCD_PASSWORD (etcdclient.PasswordEnv); it is
// still read when that one is empty.
const oldPasswordEnv = "MESHCTL_PASSWORD"

// globalFlags are the flags every command takes: where etcd is, how to
// authenticate, and how long to wait.
type globalFlags struct {
	etcd        etcdclient.Settings
	dialTimeout time.Duration
	timeout     time.Duration
}

// register adds the etcd flags meshdns has too (internal/etcdclient), with
// meshctl's old names --cacert, --cert, --key and --user as hidden aliases,
// and meshctl's own timeouts.
func (g *globalFlags) register(fs *pflag.FlagSet) {
	etcdclient.Register(fs, &g.etcd, []string{"127.0.0.1:2379"}, registry.DefaultPrefix)
	etcdclient.RegisterAliases(fs, &g.etcd)
	// Scripts written for meshctl alone keep working: the old password
	// variable, and --etcd-user NAME:PASSWORD (meshdns refuses the latter).
	g.etcd.FallbackPasswordEnvs = []string{oldPasswordEnv}
	g.etcd.InlinePassword = true
	fs.DurationVar(&g.dialTimeout, "dial-timeout", etcdclient.DefaultDialTimeout, "how long to wait for etcd to answer at all")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "how long the whole command may take")
}

// clientConfig turns the flags into a client configuration, reading the TLS
// files, the way meshdns does (etcdclient.Settings.Config). Its errors name
// the flag at fault.
func (g *globalFlags) clientConfig() (clientv3.Config, error) {
	if g.dialTimeout <= 0 {
		return clientv3.Config{}, fmt.Errorf("--dial-timeout %s: must be positive", g.dialTimeout)
	}
	if g.timeout <= 0 {
		return clientv3.Config{}, fmt.Errorf("--timeout %s: must be positive", g.timeout)
	}
	// No logger: the client's retry chatter on stderr would break the
	// one-line error contract; errors reach us as values.
	return g.etcd.Config(nil, g.dialTimeout)
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
	_, err = cli.Get(probeCtx, g.etcd.Prefix, clientv3.WithCountOnly())
	probeCancel()
	eps := strings.Join(cfg.Endpoints, ",")
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("etcd at %s did not answer within --dial-timeout %s; check that etcd runs there and --etcd-endpoints", eps, g.dialTimeout)
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("etcd at %s requires authentication: give --%s NAME and the password in $%s", eps, etcdclient.FlagUser, etcdclient.PasswordEnv)
	case err != nil:
		return fmt.Errorf("etcd at %s: %w", eps, err)
	}

	err = f(ctx, &session{cli: cli, w: registry.NewWriter(cli, g.etcd.Prefix)})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("%w (the command ran out of --timeout %s; raise it for large loads)", err, g.timeout)
	}
	return err
}
