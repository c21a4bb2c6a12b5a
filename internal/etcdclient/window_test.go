package etcdclient_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/meshdns/meshdns/internal/etcdclient"
	"github.com/meshdns/meshdns/internal/etcdtest"
)

// writeCounter counts the bytes a connection writes.
type writeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c writeCounter) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// TestWatchSendsNoPingPerEvent: a watching client configured by Config
// writes next to nothing while events arrive one by one. With gRPC's
// dynamic windows it answered nearly every event with a bandwidth PING
// (17 bytes, and an answer from etcd or its proxy): for a fleet, one extra
// round of work per event on every host and on the proxies.
func TestWatchSendsNoPingPerEvent(t *testing.T) {
	e := etcdtest.Embedded(t)
	writer := e.Client(t)
	cfg, err := etcdclient.Settings{Endpoints: e.Endpoints(), Prefix: "/meshdns/v1/"}.Config(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, n: &written}, nil
	}))
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wch := cli.Watch(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r := <-wch; !r.Created {
		t.Fatalf("first response %+v, want created", r)
	}
	const events = 100
	before := written.Load()
	for i := range events {
		if _, err := writer.Put(ctx, fmt.Sprintf("k/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
		if r := <-wch; len(r.Events) != 1 {
			t.Fatalf("event %d: response %+v", i, r)
		}
		time.Sleep(2 * time.Millisecond) // time for a PING's answer
	}
	got := written.Load() - before
	t.Logf("client wrote %d bytes while receiving %d events", got, events)
	// A PING frame is 17 bytes; one per event would be 1,700.
	if got > 17*events/10 {
		t.Errorf("client wrote %d bytes while receiving %d events: about one PING per event", got, events)
	}
}
