package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/internal/etcdwatch"
	"github.com/meshdns/meshdns/metrics"
	"github.com/meshdns/meshdns/registry"
)

func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr, func(o *options) error { return serve(o, args, stdout, stderr) })
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "meshdns: %v\n", err)
		return 1
	}
	return 0
}

// serve runs meshdns until SIGINT or SIGTERM. args are kept so SIGHUP can
// read the command line and the config file again.
func serve(o *options, args []string, stdout, stderr io.Writer) error {
	level := zap.NewAtomicLevelAt(parseLevel(o.logLevel))
	log := newLogger(level, o.logFormat, stderr)
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	endpoints := o.etcdEndpoints
	if len(endpoints) == 0 {
		endpoints = []string{o.embeddedEtcdURL}
	}
	logSettings(log, "meshdns starting", o, endpoints)
	warnUnsafeSettings(log, o)
	raiseOpenFiles(o.maxTCPConns, log)
	mem := newMemoryTuner(ctx, log)
	mem.apply(o) // before the first load; SIGHUP applies changes (runtimeSettings)
	gc := mem.gc // the one owner of GOGC, also through the registry's loads

	m := metrics.New()
	store := registry.NewStore(o.etcdPrefix, registry.WithLogger(log.Named("registry")),
		registry.WithListener(m.StoreListener()))
	etcdCfg, err := etcdClientConfig(o, endpoints, log)
	if err != nil {
		return err
	}
	cluster := loadLocalCopy(o, store, log.Named("registry"))
	// The syncer makes the client in the background, retrying: with
	// --etcd-user, making one fetches an auth token from etcd, and an etcd
	// that is down must not keep DNS from answering from the local copy.
	connect := func(ctx context.Context) (*clientv3.Client, error) {
		cfg := etcdCfg
		cfg.Context = ctx
		cli, err := clientv3.New(cfg)
		if errors.Is(err, rpctypes.ErrAuthFailed) {
			return nil, fmt.Errorf("etcd at %v refused user %q: %w; check --etcd-user and $%s", endpoints, o.etcdUser, err, etcdPasswordEnv)
		}
		if err != nil {
			return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
		}
		// One goroutine per watch response instead of clientv3's three
		// (internal/etcdwatch).
		etcdwatch.Install(cli)
		return cli, nil
	}
	// Spread and pace the full loads of a fleet (docs/proxy.md); a lone
	// server on its embedded etcd has no fleet to spread.
	loadJitter := o.loadJitter
	if len(o.etcdEndpoints) == 0 {
		loadJitter = 0
	}
	syncer := registry.NewSyncer(registry.SyncerConfig{Connect: connect, Prefix: o.etcdPrefix, Store: store, Log: log.Named("sync"),
		ClusterID: cluster, ReconcileInterval: o.reconcileInterval,
		OnLoadStart: gc.loadStart, OnLoadEnd: gc.loadEnd, OnReconcileEnd: gc.reconcileEnd,
		ReloadJitter: loadJitter, LoadRate: o.loadRate})
	m.WatchRegistry(store, syncer.Status)

	// The HTTP endpoint comes first, so /healthz answers and /readyz
	// explains the wait while etcd starts or is still out of reach. An
	// address already taken does not stop meshdns: it is the host's only
	// resolver, and answering DNS matters more than being scraped.
	if o.http != "" {
		hs := metrics.NewHTTPServer(m.Registry(), metrics.Readiness(store, syncer.Status), log.Named("http"))
		if o.pprof {
			hs.ServeProfiles()
		}
		// The status page at / (issue #14); it lists every org, so
		// --http stays on loopback (docs/deploy.md).
		sp := m.NewStatusPage(store, syncer.Status, metrics.Readiness(store, syncer.Status),
			metrics.StatusInfo{Settings: statusSettings(o, endpoints), Endpoints: endpoints})
		hs.ServeStatus(sp)
		go sp.Run(ctx)
		if err := hs.Start(o.http); err != nil {
			log.Error("cannot serve /metrics, /healthz and /readyz; answering DNS without them", zap.Error(err))
		} else {
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = hs.Shutdown(sctx)
			}()
		}
	}

	// DNS answers (from the local copy, or SERVFAIL until the first load)
	// before anything waits on etcd.
	rs := &runtimeSettings{level: level, log: log, fwdObs: m.Forward(), qlog: newQueryLog(log.Named("query"), o.queryLogSample), mem: mem}
	rs.obs = observers{m.Queries(), rs.qlog}
	if err := rs.apply(o); err != nil {
		return err
	}
	dcfg := rs.dnsConfig(o)
	if o.udpBlocking {
		procsForBlockingUDP(&dcfg)
	}
	srv := dnsserver.New(dcfg, store)
	if err := srv.Start(); err != nil {
		return err
	}
	m.WatchTCP(srv.TCPStats)
	m.WatchRateLimit(srv.RateLimitStats)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	rs.mu.Lock()
	rs.srv = srv
	rs.mu.Unlock()
	go reloadOnSIGHUP(ctx, args, rs, endpoints)
	log.Info("meshdns started", zap.Strings("listen", o.listen))
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		systemdNotifier{log: log.Named("systemd"), ready: func() bool { return syncer.Status().Ready }, probe: probeAddr(srv.Addrs())}.run(ctx)
	}()
	defer func() { <-notifyDone }()

	if len(o.etcdEndpoints) == 0 {
		e, err := startEmbeddedEtcd(o, log)
		if err != nil {
			return err
		}
		defer func() {
			e.Close()
			log.Info("embedded etcd stopped")
		}()
	}
	if o.demo {
		// Seeded before the first load, so it holds the demo org. The
		// embedded etcd is up and needs no token: this client does not wait.
		cli, err := connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for etcd: a normal exit
			}
			return err
		}
		err = seedDemo(ctx, cli, o.etcdPrefix)
		cli.Close()
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	syncDone, copyDone := make(chan struct{}), make(chan struct{})
	syncCtx, cancelSync := context.WithCancel(ctx)
	go func() {
		defer close(syncDone)
		_ = syncer.Run(syncCtx)
	}()
	go func() {
		defer close(copyDone)
		saveLocalCopies(syncCtx, o, store, syncer, log.Named("registry"))
	}()
	defer func() {
		cancelSync()
		<-syncDone
		<-copyDone
	}()

	if o.demo {
		waitLoaded(ctx, store)
		printDemo(stdout, srv, endpoints)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
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
