package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
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
	log := newLogger(level, stderr)
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	endpoints := o.etcdEndpoints
	if len(endpoints) == 0 {
		endpoints = []string{o.embeddedEtcdURL}
	}
	logSettings(log, "meshdns starting", o, endpoints)
	ms := applyMemorySettings(o)
	log.Info("memory settings", ms.fields()...)
	if ms.AutoGC {
		go adjustGCPercent(ctx, 10*time.Second, log.Named("memory"))
	}

	m := metrics.New()
	store := registry.NewStore(o.etcdPrefix, registry.WithLogger(log.Named("registry")),
		registry.WithListener(m.StoreListener()))
	etcdCfg, err := etcdClientConfig(o, endpoints, log)
	if err != nil {
		return err
	}
	// The client connects lazily, so creating it before etcd is up is
	// fine: the syncer keeps retrying and /readyz says why it waits.
	cli, err := clientv3.New(etcdCfg)
	if err != nil {
		return fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	defer cli.Close()
	cluster := loadLocalCopy(o, store, log.Named("registry"))
	// Spread and pace the full loads of a fleet (docs/proxy.md); a lone
	// server on its embedded etcd has no fleet to spread.
	loadJitter := o.loadJitter
	if len(o.etcdEndpoints) == 0 {
		loadJitter = 0
	}
	syncer := registry.NewSyncer(registry.SyncerConfig{Client: cli, Prefix: o.etcdPrefix, Store: store, Log: log.Named("sync"),
		ClusterID: cluster, ReconcileInterval: o.reconcileInterval, LoadGCPercent: loadGCPercent,
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
		if err := seedDemo(ctx, cli, o.etcdPrefix); err != nil {
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

	rs := &runtimeSettings{level: level, log: log, fwdObs: m.Forward(), qlog: newQueryLog(log.Named("query"), o.queryLogSample)}
	rs.obs = observers{m.Queries(), rs.qlog}
	if err := rs.apply(o); err != nil {
		return err
	}
	dcfg := rs.dnsConfig(o)
	if o.udpBlocking {
		// Each blocking reader holds a P while it waits in recvmmsg. One P
		// more than readers leaves the runtime (timers, TCP, etcd, GC) a P
		// of its own, so the scheduler never has to take a P from a reader
		// in its system call and hand it back when the call returns. A
		// blocked reader uses no CPU, so Ps beyond the cores cost nothing
		// until every reader is busy at once.
		dcfg.UDPSockets = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(dcfg.UDPReaders() + 1)
	}
	srv := dnsserver.New(dcfg, store)
	if err := srv.Start(); err != nil {
		return err
	}
	rs.mu.Lock()
	rs.srv = srv
	rs.mu.Unlock()
	go reloadOnSIGHUP(ctx, args, rs, endpoints)
	log.Info("meshdns started", zap.Strings("listen", o.listen))

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
