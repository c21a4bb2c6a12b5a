package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/meshdns/meshdns/internal/etcdclient"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdClientConfig builds the client configuration for endpoints with the
// TLS files, user and password of the etcd flags, through the one builder
// meshctl uses too (internal/etcdclient). File errors name the flag at fault.
func etcdClientConfig(o *options, endpoints []string, log *zap.Logger) (clientv3.Config, error) {
	return o.etcdSettings(endpoints).Config(log.Named("etcd-client"), etcdclient.DefaultDialTimeout)
}

// etcdSettings are the etcd flags' values, with endpoints (the embedded
// etcd's URL when --etcd-endpoints is empty).
func (o *options) etcdSettings(endpoints []string) etcdclient.Settings {
	return etcdclient.Settings{Endpoints: endpoints, Prefix: o.etcdPrefix,
		CACert: o.etcdCACert, Cert: o.etcdCert, Key: o.etcdKey, User: o.etcdUser}
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
