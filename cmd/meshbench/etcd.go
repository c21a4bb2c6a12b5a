//go:build linux

package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// benchEtcd is a single-member etcd on loopback: inside meshbench
// (embedded), or as its own process, so that its CPU time can be told
// apart from meshbench's.
type benchEtcd struct {
	e         *embed.Etcd // embedded
	p         *proc       // process
	Endpoint  string
	Client    *clientv3.Client
	closeLogs func()
}

// CPU is the CPU time etcd has used so far. For an embedded etcd it is
// meshbench's whole process, which also holds the generated registry.
func (b *benchEtcd) CPU() time.Duration {
	if b.p != nil {
		return cpuTime(b.p.Pid())
	}
	return cpuTime(os.Getpid())
}

// Label names what CPU measures.
func (b *benchEtcd) Label() string {
	if b.p != nil {
		return "etcd"
	}
	return "meshbench with embedded etcd"
}

// startEtcdProcess runs the etcd binary bin with the embedded etcd's
// settings, data and log under dir.
func startEtcdProcess(dir, bin string) (*benchEtcd, error) {
	ports := make([]int, 2)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	p, err := startProc("etcd", filepath.Join(dir, "etcd.log"), nil, bin,
		"--name", "meshbench", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "meshbench="+peer,
		"--quota-backend-bytes", fmt.Sprint(int64(8<<30)), "--max-request-bytes", fmt.Sprint(16<<20),
		"--unsafe-no-fsync", "--heartbeat-interval", "10", "--election-timeout", "100",
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	p.shared = true
	b := &benchEtcd{p: p, Endpoint: client, closeLogs: func() {}}
	if b.Client, err = newEtcdClient(client); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := b.Client.Get(ctx, "health")
		cancel()
		if err == nil {
			return b, nil
		}
		if perr := p.errExited(); perr != nil || time.Now().After(deadline) {
			b.Close()
			return nil, fmt.Errorf("etcd %s not ready: %v %v", bin, err, perr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newEtcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:          []string{endpoint},
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20,
	})
}

// startEtcd starts the embedded etcd with its data and log under dir.
func startEtcd(dir string) (*benchEtcd, error) {
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "meshbench"
	cfg.Dir = filepath.Join(dir, "etcd")
	zero := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{zero}
	cfg.AdvertiseClientUrls = []url.URL{zero}
	cfg.ListenPeerUrls = []url.URL{zero}
	cfg.AdvertisePeerUrls = []url.URL{zero}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A million machines take about 1 GiB of backend; the default 2 GiB
	// quota leaves too little room for the history of reloads.
	cfg.QuotaBackendBytes = 8 << 30
	// Room for large transactions and for replies to meshdns's paged loads.
	cfg.MaxRequestBytes = 16 << 20
	// The registry is scratch data: fsync would only make loading slower,
	// and the benchmarks measure meshdns, not the disk.
	cfg.UnsafeNoFsync = true
	// A lone member may elect itself fast.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logf), zap.WarnLevel)))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		logf.Close()
		return nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		logf.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 30s (log: %s)", logf.Name())
	}
	b := &benchEtcd{e: e, Endpoint: "http://" + e.Clients[0].Addr().String(), closeLogs: func() { logf.Close() }}
	if b.Client, err = newEtcdClient(b.Endpoint); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close stops the client and the server.
func (b *benchEtcd) Close() {
	if b.Client != nil {
		b.Client.Close()
	}
	if b.e != nil {
		b.e.Close()
	}
	if b.p != nil {
		b.p.Stop(5 * time.Second)
	}
	b.closeLogs()
}
