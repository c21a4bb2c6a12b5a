package ops

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const prefix = "/meshdns/v1/"

// startEtcd runs a single-member etcd in the test process on the given
// loopback ports (internal/etcdtest picks its own ports; these tests need
// to know the port before etcd runs, or to serve TLS). With tlsInfo the
// client port speaks TLS only. t.Cleanup stops it.
func startEtcd(t *testing.T, clientPort, peerPort int, tlsInfo *transport.TLSInfo) *embed.Etcd {
	t.Helper()
	dir := t.TempDir()
	scheme := "http"
	if tlsInfo != nil {
		scheme = "https"
	}
	cu := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg := embed.NewConfig()
	cfg.Name = "ops"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A lone member on a test disk: no fsync, quick self-election.
	cfg.UnsafeNoFsync = true
	cfg.TickMs, cfg.ElectionMs = 10, 100
	if tlsInfo != nil {
		cfg.ClientTLSInfo = *tlsInfo
	}
	logFile, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logFile), zap.WarnLevel)))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd on %s: %v", cu.String(), err)
	}
	t.Cleanup(func() { e.Close(); logFile.Close() })
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd on %s failed: %v", cu.String(), err)
	case <-time.After(15 * time.Second):
		t.Fatalf("etcd on %s not ready after 15s", cu.String())
	}
	return e
}

// put writes one registry key (below the prefix) through a client of its own.
func put(t *testing.T, _ *embed.Etcd, endpoint string, tlsCfg *tls.Config, key, value string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, prefix+key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
