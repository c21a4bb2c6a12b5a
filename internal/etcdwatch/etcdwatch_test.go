package etcdwatch_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/internal/etcdwatch"
)

// newWatcher returns a real embedded etcd's client and an etcdwatch.Watcher
// on that client's connection.
func newWatcher(t *testing.T) (*etcdtest.EmbeddedEtcd, *clientv3.Client, *etcdwatch.Watcher) {
	t.Helper()
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := etcdwatch.New(cli.ActiveConnection())
	t.Cleanup(func() { w.Close() })
	return e, cli, w
}

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, k, v)
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return r.Header.Revision
}

// next receives one response, failing the test after 10 s.
func next(t *testing.T, ch clientv3.WatchChan) (clientv3.WatchResponse, bool) {
	t.Helper()
	select {
	case r, ok := <-ch:
		return r, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no watch response in 10 s")
		return clientv3.WatchResponse{}, false
	}
}

// TestWatchEvents: a prefix watch from a past revision replays that
// history and then follows new writes, in order, with created notify
// only when asked, prev_kv when asked, and nothing outside the prefix.
func TestWatchEvents(t *testing.T) {
	_, cli, w := newWatcher(t)
	first := put(t, cli, "/p/a", "1")
	put(t, cli, "/q/outside", "x")
	put(t, cli, "/p/b", "2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := w.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithCreatedNotify(), clientv3.WithPrevKV())
	r, _ := next(t, ch)
	if !r.Created || r.Err() != nil || r.Header == nil || r.Header.ClusterId == 0 {
		t.Fatalf("first response %+v, want created with a header", r)
	}
	var got []string
	for len(got) < 3 {
		r, ok := next(t, ch)
		if !ok {
			t.Fatal("channel closed")
		}
		if r.Err() != nil || r.Created || r.IsProgressNotify() {
			t.Fatalf("response %+v", r)
		}
		for _, e := range r.Events {
			got = append(got, fmt.Sprintf("%s %s=%s", e.Type, e.Kv.Key, e.Kv.Value))
			if string(e.Kv.Key) == "/p/a" && e.Kv.ModRevision > first && (e.PrevKv == nil || string(e.PrevKv.Value) != "1") {
				t.Errorf("overwrite of /p/a without its previous value: %+v", e.PrevKv)
			}
		}
		if len(got) == 2 {
			put(t, cli, "/p/a", "3")
		}
	}
	want := []string{"PUT /p/a=1", "PUT /p/b=2", "PUT /p/a=3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", got, want)
	}

	// Without WithCreatedNotify the created response is not passed on.
	ch2 := w.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithFilterPut())
	del, err := cli.Delete(ctx, "/p/b")
	if err != nil {
		t.Fatal(err)
	}
	r, _ = next(t, ch2)
	if r.Created || len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE || r.Events[0].Kv.ModRevision != del.Header.Revision {
		t.Errorf("watch without created notify, puts filtered: first response %+v, want the delete alone", r)
	}
}

// TestWatchProgress: RequestProgress reaches an open watch as a progress
// notification at etcd's current revision, and says so when there is no
// watch to ask on.
func TestWatchProgress(t *testing.T) {
	_, cli, w := newWatcher(t)
	rev := put(t, cli, "/other", "x")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.RequestProgress(ctx); err == nil {
		t.Error("RequestProgress with no watch open: no error, as if asked")
	}
	ch := w.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r, _ := next(t, ch); !r.Created {
		t.Fatalf("first response %+v, want created", r)
	}
	if err := w.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := next(t, ch)
	if !r.IsProgressNotify() || r.Header.Revision < rev {
		t.Errorf("response %+v, want a progress notification at revision %d or later", r, rev)
	}
}

// TestWatchCompacted: a watch from a compacted revision gets one response
// whose Err is ErrCompacted, with the compact revision, and then closes.
func TestWatchCompacted(t *testing.T) {
	_, cli, w := newWatcher(t)
	put(t, cli, "/p/a", "1")
	rev := put(t, cli, "/p/a", "2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	ch := w.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithRev(rev-1))
	r, ok := next(t, ch)
	if !ok || r.CompactRevision != rev || !errors.Is(r.Err(), rpctypes.ErrCompacted) {
		t.Fatalf("response %+v (err %v), want compacted at %d", r, r.Err(), rev)
	}
	if _, ok := next(t, ch); ok {
		t.Error("channel still open after the compaction")
	}
}

// TestWatchEnds: the channel closes without a last response when the
// watch's context ends or the watcher is closed, and with a cancelled
// response saying why when etcd goes away. While etcd is away, Watch waits
// for it (as clientv3's does) until the context ends or the watcher is
// closed.
func TestWatchEnds(t *testing.T) {
	e, cli, w := newWatcher(t)
	put(t, cli, "/p/a", "1")

	ctx, cancel := context.WithCancel(context.Background())
	ch := w.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	next(t, ch)
	cancel()
	if r, ok := next(t, ch); ok {
		t.Errorf("after the context ended: response %+v, want the channel closed", r)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch = w.Watch(ctx2, "/p/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	next(t, ch)
	e.Close()
	r, ok := next(t, ch)
	if !ok || !r.Canceled || r.Err() == nil || r.Header == nil {
		t.Fatalf("after etcd stopped: response %+v (ok %v), want a cancelled response with an error", r, ok)
	}
	t.Logf("etcd stopped: %v", r.Err())
	if _, ok := next(t, ch); ok {
		t.Error("channel open after the last response")
	}

	// etcd is gone: Watch waits until its context ends.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel3()
	if r, ok := next(t, w.Watch(ctx3, "/p/", clientv3.WithPrefix())); ok {
		t.Errorf("watch with etcd gone: response %+v, want a closed channel once the context ended", r)
	}
	// ... or until the watcher is closed.
	closed := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.Close()
		close(closed)
	}()
	ch = w.Watch(context.Background(), "/p/", clientv3.WithPrefix())
	<-closed
	if r, ok := next(t, ch); ok {
		t.Errorf("after Close: response %+v, want the channel closed", r)
	}
	if r, ok := next(t, w.Watch(context.Background(), "/p/")); ok {
		t.Errorf("watch on a closed watcher: response %+v, want a closed channel", r)
	}
	if err := w.RequestProgress(context.Background()); err == nil {
		t.Error("RequestProgress on a closed watcher: no error")
	}
}

// TestInstall: an installed watcher is the client's Watcher and goes with
// it: the client's Watch uses it and the client's Close ends its watches.
// A write made as soon as Watch returned is on the watch (Watch returns
// once etcd confirmed it, as clientv3's does).
func TestInstall(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	etcdwatch.Install(cli)
	if _, ok := cli.Watcher.(*etcdwatch.Watcher); !ok {
		t.Fatalf("client's watcher is a %T", cli.Watcher)
	}
	ch := cli.Watch(context.Background(), "/p/", clientv3.WithPrefix())
	put(t, cli, "/p/a", "1")
	if r, _ := next(t, ch); len(r.Events) != 1 {
		t.Fatalf("response %+v, want the put", r)
	}
	cli.Close()
	for {
		if _, ok := next(t, ch); !ok {
			break
		}
	}
}
