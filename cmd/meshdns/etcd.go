package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcdClientConfig builds the client configuration: endpoints, TLS from
// --etcd-cacert/--etcd-cert/--etcd-key, and --etcd-user with the password
// from the environment. File errors name the flag at fault.
func etcdClientConfig(o *options, endpoints []string, log *zap.Logger) (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:   shuffled(endpoints),
		DialTimeout: 5 * time.Second,
		Logger:      log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
		// gRPC's default reconnect backoff grows to two minutes, so a
		// server that lost etcd would go on serving an old snapshot for
		// that long after etcd is back. Cap it at a few seconds; the
		// jitter keeps a fleet from reconnecting in step.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})},
	}
	if o.etcdCACert != "" || o.etcdCert != "" {
		info := transport.TLSInfo{CertFile: o.etcdCert, KeyFile: o.etcdKey, TrustedCAFile: o.etcdCACert}
		tlsCfg, err := info.ClientConfig()
		if err != nil {
			return cfg, fmt.Errorf("etcd TLS from --etcd-cacert %q --etcd-cert %q --etcd-key %q: %w", o.etcdCACert, o.etcdCert, o.etcdKey, err)
		}
		cfg.TLS = tlsCfg
	}
	if o.etcdUser != "" {
		cfg.Username, cfg.Password = o.etcdUser, os.Getenv(etcdPasswordEnv)
	}
	return cfg, nil
}

// shuffled is a copy of endpoints in random order. Every host of a fleet is
// configured with the same list; taken in that order by a balancer that
// starts at the first endpoint, the whole fleet's first connections (and
// watches) would pile onto one member or proxy. clientv3 3.7's round-robin
// balancer (grpc-go) happens to rotate its list by a random amount already;
// the shuffle keeps the spread whatever the balancer does.
func shuffled(endpoints []string) []string {
	out := slices.Clone(endpoints)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// embeddedEtcd is the in-process etcd; Close stops it.
type embeddedEtcd struct {
	*embed.Etcd
	closing *atomic.Bool
}

// Close stops etcd. Its servers report their listeners closing as errors
// ("setting up serving from embedded etcd failed ... server closed"); on a
// shutdown we asked for, those are not errors, so they are logged at debug.
func (e embeddedEtcd) Close() {
	e.closing.Store(true)
	e.Etcd.Close()
}

// shutdownCore logs etcd's errors as debug lines once its Close began.
type shutdownCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c shutdownCore) With(fs []zapcore.Field) zapcore.Core {
	return shutdownCore{Core: c.Core.With(fs), closing: c.closing}
}

func (c shutdownCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() && e.Level >= zapcore.ErrorLevel {
		e.Level = zapcore.DebugLevel
	}
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// startEmbeddedEtcd runs a single-member etcd in-process with its data
// under --data-dir, serving clients on --embedded-etcd-url. It logs through
// log (as "etcd"), errors only, as etcd's own info lines would drown ours.
func startEmbeddedEtcd(o *options, log *zap.Logger) (embeddedEtcd, error) {
	closing := new(atomic.Bool)
	cu, _ := url.Parse(o.embeddedEtcdURL)
	pu, err := url.Parse(o.embeddedEtcdPeerURL)
	if err != nil {
		return embeddedEtcd{}, fmt.Errorf("--embedded-etcd-peer-url %q: %w", o.embeddedEtcdPeerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "meshdns"
	cfg.Dir = filepath.Join(o.dataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(log.Named("etcd").WithOptions(
		zap.IncreaseLevel(zapcore.ErrorLevel),
		zap.WrapCore(func(c zapcore.Core) zapcore.Core { return shutdownCore{Core: c, closing: closing} }),
	))
	// Keep about an hour of history for watchers that fall behind.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return embeddedEtcd{}, fmt.Errorf("--data-dir %s: %w", o.dataDir, err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return embeddedEtcd{}, fmt.Errorf("start embedded etcd (data %s, clients %s, peers %s): %w", cfg.Dir, cu, pu, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return embeddedEtcd{}, errors.New("embedded etcd did not become ready within 30s")
	}
	log.Info("embedded etcd started", zap.String("data", cfg.Dir), zap.String("clients", cu.String()))
	return embeddedEtcd{Etcd: e, closing: closing}, nil
}
