package etcdtest

import (
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdwatch"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// embeddedReadyTimeout bounds how long Embedded waits for the server to
// become ready. A single member elects itself almost at once, so hitting this
// means something is broken rather than slow.
const embeddedReadyTimeout = 15 * time.Second

// logTailLines is how much of a server log a failing test prints.
const logTailLines = 40

// EmbeddedEtcd is a single-member etcd server running inside the test process.
// It is the cheap default for tests that need "an etcd" but do not care about
// processes, signals or multi-member behaviour; use Cluster for those. It can
// be closed early to simulate an outage but not restarted (a new one would
// get new ports); tests of etcd coming back use Cluster(t, 1).
type EmbeddedEtcd struct {
	// Etcd is the underlying server, for tests that need to reach past the
	// helpers (for example to inspect Etcd.Server).
	Etcd *embed.Etcd

	endpoints []string
	closeOnce sync.Once
}

// Embedded starts a single-member etcd inside the test process and waits until
// it serves requests. The server listens on 127.0.0.1 with kernel-chosen ports
// (so parallel tests never collide), keeps its data in t.TempDir() and is
// closed by t.Cleanup.
func Embedded(t testing.TB) *EmbeddedEtcd {
	t.Helper()

	base := t.TempDir()
	logPath := filepath.Join(base, "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	// Cleanups run last-in first-out: this one runs after the server is
	// closed, so the log is complete and no longer written to.
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			t.Logf("etcdtest: embedded etcd log (last %d lines):\n%s", logTailLines, logTail(logPath, logTailLines))
		}
	})

	cfg := embed.NewConfig()
	cfg.Name = "embedded"
	cfg.Dir = filepath.Join(base, "data")
	// Port 0 everywhere: the kernel picks free ports atomically at bind time,
	// avoiding the pick-then-bind race that FreePorts has. The advertised peer
	// URL keeps port 0 because a single member never dials its own peer URL;
	// the real client address is read back from the listener after start.
	zero := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{zero}
	cfg.AdvertiseClientUrls = []url.URL{zero}
	cfg.ListenPeerUrls = []url.URL{zero}
	cfg.AdvertisePeerUrls = []url.URL{zero}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// fsync dominates start-up and write latency on CI disks, and test data
	// need not survive a machine crash.
	cfg.UnsafeNoFsync = true
	// A lone member has no peers to miss heartbeats from, so a short tick is
	// safe even on a loaded machine; it cuts the self-election at start-up
	// from ~300 ms (sometimes 1 s) to a few tens of milliseconds.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	// Warnings and errors go to a file shown only on failure: even at error
	// level etcd logs a handful of harmless "server closed" errors on every
	// shutdown, which would drown real output. A logger we own (instead of
	// cfg.LogOutputs) also lets us close the file; etcd never closes its own.
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(enc),
		zapcore.AddSync(logFile),
		zap.WarnLevel,
	)))

	start := time.Now()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcdtest: start embedded etcd: %v", err)
	}
	ee := &EmbeddedEtcd{Etcd: e}
	t.Cleanup(ee.Close)

	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcdtest: embedded etcd failed before becoming ready: %v", err)
	case <-time.After(embeddedReadyTimeout):
		t.Fatalf("etcdtest: embedded etcd not ready after %v", embeddedReadyTimeout)
	}
	for _, l := range e.Clients {
		ee.endpoints = append(ee.endpoints, "http://"+l.Addr().String())
	}
	t.Logf("etcdtest: embedded etcd ready at %v in %v", ee.endpoints, time.Since(start).Round(time.Millisecond))
	return ee
}

// Endpoints returns the client URLs, e.g. "http://127.0.0.1:41234".
func (e *EmbeddedEtcd) Endpoints() []string { return e.endpoints }

// Client returns a client connected to the server; t.Cleanup closes it.
func (e *EmbeddedEtcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, e.endpoints)
}

// Close stops the server. It is safe to call more than once, so tests can
// stop the server early (to test etcd outages) and still rely on t.Cleanup.
func (e *EmbeddedEtcd) Close() {
	e.closeOnce.Do(e.Etcd.Close)
}

// newClient builds a client for endpoints and registers its Close with t.
// The client does not block on dialing, so it can be created for members
// that are currently down.
func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientConfig(endpoints))
	if err != nil {
		t.Fatalf("etcdtest: new client for %v: %v", endpoints, err)
	}
	// Tests watch as meshdns does (cmd/meshdns installs it too).
	etcdwatch.Install(c)
	t.Cleanup(func() { c.Close() })
	return c
}

func clientConfig(endpoints []string) clientv3.Config {
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// The default client logger writes info-level retry chatter to
		// stderr, which buries real failures in fault-injection tests.
		Logger: zap.NewNop(),
		// gRPC waits 1 s before redialing a refused address, then longer.
		// Members being started or restarted refuse connections for a
		// moment, so the default adds about a second to every start and
		// restart; reconnect quickly instead (loopback only, so it is cheap).
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  20 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   500 * time.Millisecond,
			},
			MinConnectTimeout: time.Second,
		})},
	}
}
