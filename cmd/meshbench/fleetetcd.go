//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The fleet benchmark runs etcd as a real 3-member cluster of processes,
// and etcd's gRPC proxy (`etcd grpc-proxy start`, part of the etcd binary)
// in front of it, so that the CPU and memory of each can be read from /proc.

// fleetEtcdBinary finds the etcd binary like internal/etcdtest does:
// --etcd PATH, $ETCD_BIN, etcd on PATH, $(go env GOPATH)/bin/etcd.
func fleetEtcdBinary(flag string) (string, error) {
	if flag != "" && flag != "embedded" {
		return flag, nil
	}
	if bin := os.Getenv("ETCD_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("ETCD_BIN=%q: %v", bin, err)
		}
		return bin, nil
	}
	if bin, err := exec.LookPath("etcd"); err == nil {
		return bin, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if first := filepath.SplitList(strings.TrimSpace(string(out))); len(first) > 0 && first[0] != "" {
			bin := filepath.Join(first[0], "bin", "etcd")
			if _, err := os.Stat(bin); err == nil {
				return bin, nil
			}
		}
	}
	return "", fmt.Errorf("the fleet benchmark runs etcd processes and etcd's gRPC proxy: pass --etcd PATH, set ETCD_BIN, " +
		"or build it with `go build -o $(go env GOPATH)/bin/etcd go.etcd.io/etcd/server/v3`")
}

// fleetCluster is a 3-member etcd cluster of processes on loopback.
type fleetCluster struct {
	Bin       string
	Members   []*proc
	Endpoints []string // client URLs, http://127.0.0.1:port
	Client    *clientv3.Client
}

// startFleetCluster starts n members under dir and waits until each serves
// a linearizable read.
func startFleetCluster(ctx context.Context, dir, bin string, n int) (*fleetCluster, error) {
	c := &fleetCluster{Bin: bin}
	var peers, initial []string
	for i := range n {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		c.Endpoints = append(c.Endpoints, fmt.Sprintf("http://127.0.0.1:%d", cp))
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", pp))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	token := fmt.Sprintf("meshbench-fleet-%d", time.Now().UnixNano())
	for i := range n {
		p, err := startProc(fmt.Sprintf("etcd m%d", i), filepath.Join(dir, fmt.Sprintf("etcd-m%d.log", i)), etcdEnvOnly(), bin,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-m%d", i)),
			"--listen-client-urls", c.Endpoints[i], "--advertise-client-urls", c.Endpoints[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", token,
			"--initial-cluster-state", "new",
			// Scratch data: the benchmark measures fan-out, not the disk.
			"--unsafe-no-fsync", "--quota-backend-bytes", fmt.Sprint(int64(8<<30)),
			"--max-request-bytes", fmt.Sprint(16<<20), "--log-level", "warn")
		if err != nil {
			c.Close()
			return nil, err
		}
		p.shared = true
		c.Members = append(c.Members, p)
	}
	var err error
	if c.Client, err = newEtcdClientAt(c.Endpoints...); err != nil {
		c.Close()
		return nil, err
	}
	for i, ep := range c.Endpoints {
		if err := waitEtcdServing(ctx, ep, c.Members[i], 60*time.Second); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// etcdEnvOnly blanks the ETCD_* variables of our environment (startProc
// appends to it, and the last setting wins), which etcd would read as flags.
func etcdEnvOnly() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "ETCD_") {
			env = append(env, k+"=")
		}
	}
	return env
}

func newEtcdClientAt(endpoints ...string) (*clientv3.Client, error) {
	c, err := newEtcdClient(endpoints[0])
	if err != nil {
		return nil, err
	}
	c.SetEndpoints(endpoints...)
	return c, nil
}

// waitEtcdServing waits until endpoint (a member or a proxy) answers a
// linearizable read.
func waitEtcdServing(ctx context.Context, endpoint string, p *proc, timeout time.Duration) error {
	cli, err := newEtcdClient(endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		if perr := p.errExited(); perr != nil {
			return perr
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s at %s not serving after %v: %v (log: %s)", p.Name, endpoint, timeout, err, p.LogPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Leader returns the index of the member that leads, or -1.
func (c *fleetCluster) Leader(ctx context.Context) int {
	for i, ep := range c.Endpoints {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Client.Status(rctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	return -1
}

// Revision is etcd's current revision (a linearizable read).
func (c *fleetCluster) Revision(ctx context.Context, prefix string) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Client.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Close stops the members.
func (c *fleetCluster) Close() {
	if c.Client != nil {
		c.Client.Close()
	}
	for _, p := range c.Members {
		p.Stop(5 * time.Second)
	}
}

// grpcProxy is one `etcd grpc-proxy start` process.
type grpcProxy struct {
	*proc
	Endpoint string // http://127.0.0.1:port
}

// startGRPCProxy starts etcd's gRPC proxy in front of the cluster's
// members and waits until a read through it succeeds.
func startGRPCProxy(ctx context.Context, c *fleetCluster, dir string, i int) (*grpcProxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, ep := range c.Endpoints {
		eps = append(eps, strings.TrimPrefix(ep, "http://"))
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(fmt.Sprintf("grpc-proxy %d", i), filepath.Join(dir, fmt.Sprintf("grpc-proxy-%d.log", i)), etcdEnvOnly(),
		c.Bin, "grpc-proxy", "start", "--endpoints", strings.Join(eps, ","), "--listen-addr", addr,
		"--data-dir", filepath.Join(dir, fmt.Sprintf("grpc-proxy-%d", i)), "--advertise-client-url", addr)
	if err != nil {
		return nil, err
	}
	p.shared = true
	g := &grpcProxy{proc: p, Endpoint: "http://" + addr}
	if err := waitEtcdServing(ctx, g.Endpoint, p, 30*time.Second); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return g, nil
}

// pidCPU is the CPU time of one process (etcd members and proxies do not
// fork, so /proc/<pid>/stat alone is enough and cheap to sample often).
func pidCPU(pid int) time.Duration {
	return statCPU(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
}

// pidRSSKiB is VmRSS of one process.
func pidRSSKiB(pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// loadAvg is the first field of /proc/loadavg, as uptime prints it.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
