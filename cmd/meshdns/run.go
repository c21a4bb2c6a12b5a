package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr, func(o *options) error { return serve(o, stdout, stderr) })
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "meshdns: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(level string, stderr io.Writer) *zap.Logger {
	lvl, _ := zapcore.ParseLevel(level)
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), lvl))
}

func serve(o *options, stdout, stderr io.Writer) error {
	log := newLogger(o.logLevel, stderr)
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	endpoints := o.etcdEndpoints
	if len(endpoints) == 0 {
		e, err := startEmbeddedEtcd(o, log)
		if err != nil {
			return err
		}
		defer func() {
			e.Close()
			log.Info("embedded etcd stopped")
		}()
		endpoints = []string{o.embeddedEtcdURL}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
	})
	if err != nil {
		return fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	defer cli.Close()

	defaultOrg := o.defaultOrg
	region := o.region
	if o.demo {
		if err := seedDemo(ctx, cli, o.etcdPrefix); err != nil {
			return err
		}
		if defaultOrg == "" {
			defaultOrg = demoOrg
		}
		if region == "" {
			region = "ams"
		}
	}

	store := registry.NewStore(o.etcdPrefix, registry.WithLogger(log.Named("registry")))
	syncer := registry.NewSyncer(registry.SyncerConfig{Client: cli, Prefix: o.etcdPrefix, Store: store, Log: log.Named("sync")})
	syncDone := make(chan struct{})
	syncCtx, cancelSync := context.WithCancel(ctx)
	go func() {
		defer close(syncDone)
		_ = syncer.Run(syncCtx)
	}()
	defer func() {
		cancelSync()
		<-syncDone
	}()

	ttl := uint32(o.ttl / time.Second)
	srv := dnsserver.New(dnsserver.Config{
		Listen:     o.listen,
		DefaultOrg: defaultOrg,
		Zones:      zones.Config{TTL: ttl, NegTTL: ttl, ServerRegion: region},
		Log:        log.Named("dns"),
	}, store)
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("meshdns started", zap.Strings("listen", o.listen), zap.Strings("etcd", endpoints),
		zap.String("prefix", o.etcdPrefix), zap.String("region", region), zap.String("default_org", defaultOrg),
		zap.Duration("ttl", o.ttl))
	if o.demo {
		waitLoaded(ctx, store)
		printDemo(stdout, srv, endpoints)
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// startEmbeddedEtcd runs a single-member etcd in-process with its data
// under --data-dir, serving clients on --embedded-etcd-url.
func startEmbeddedEtcd(o *options, log *zap.Logger) (*embed.Etcd, error) {
	cu, _ := url.Parse(o.embeddedEtcdURL)
	pu, err := url.Parse(o.embeddedEtcdPeerURL)
	if err != nil {
		return nil, fmt.Errorf("--embedded-etcd-peer-url %q: %w", o.embeddedEtcdPeerURL, err)
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
	// Keep about an hour of history for watchers that fall behind.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", o.dataDir, err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd (data %s, clients %s, peers %s): %w", cfg.Dir, cu, pu, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready within 30s")
	}
	log.Info("embedded etcd started", zap.String("data", cfg.Dir), zap.String("clients", cu.String()))
	return e, nil
}

// waitLoaded waits until the store holds its first snapshot.
func waitLoaded(ctx context.Context, store *registry.Store) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for store.Snapshot() == nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
