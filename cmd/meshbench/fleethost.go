//go:build linux

package main

import (
	"context"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/meshdns/meshdns/internal/etcdclient"
	"github.com/meshdns/meshdns/internal/etcdwatch"
	"github.com/meshdns/meshdns/registry"
)

// fleetHost is one host of the fleet: what meshdns does with etcd, in a
// goroutine — its own clientv3.Client (its own connection), a
// registry.Store fed by a registry.Syncer (paged load, watch from the next
// revision, apply to the snapshot). Only the DNS server is left out.
type fleetHost struct {
	i      int
	cli    *clientv3.Client
	store  *registry.Store
	syncer *registry.Syncer
	cancel context.CancelFunc
	done   chan struct{}
	// read counts the bytes the host's connection read from etcd (or
	// from its proxy): TCP payload, gRPC and HTTP/2 framing included.
	read atomic.Int64
	// rev is the revision of the host's current snapshot.
	rev atomic.Int64
	// events counts the events the host applied.
	events atomic.Int64
	// watchOnly: see hostConfig.
	watchOnly bool
	prefix    string
	track     *atomic.Pointer[fleetTracker]
}

// hostConfig is how to start a host.
type hostConfig struct {
	Endpoint string
	Prefix   string
	// Track holds the tracker of the row being measured (nil between rows).
	Track *atomic.Pointer[fleetTracker]
	// Copy, when set, is a local copy to read before the syncer starts;
	// ClusterID comes from it.
	Copy string
	// WatchOnly hosts skip the store: they read the registry, watch from
	// the next revision and note each event's arrival, but decode and
	// apply nothing — the etcd side of a host without its CPU. StartRev,
	// when set, resumes such a host's watch (its "local copy").
	WatchOnly bool
	StartRev  int64
}

// newFleetHost makes a host and, if c.Copy is set, reads its local copy;
// start starts its syncer.
func newFleetHost(i int, c hostConfig) (*fleetHost, error) {
	h := &fleetHost{i: i, done: make(chan struct{}), watchOnly: c.WatchOnly, prefix: c.Prefix, track: c.Track}
	h.rev.Store(c.StartRev)
	h.store = registry.NewStore(c.Prefix, registry.WithListener(func(_, next *registry.Snapshot, evs []registry.Event) {
		now := time.Now()
		if next != nil {
			h.rev.Store(next.Revision)
		}
		if len(evs) == 0 {
			return
		}
		h.events.Add(int64(len(evs)))
		if t := c.Track.Load(); t != nil {
			for _, ev := range evs {
				t.seen(ev.Key, i, now)
			}
		}
	}))
	var cluster uint64
	if c.Copy != "" {
		var err error
		if cluster, err = h.store.LoadCopy(c.Copy, c.Prefix); err != nil {
			return nil, err
		}
	}
	var err error
	h.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// meshdns's windows (etcdclient.WindowOptions), then the counting dialer.
		DialOptions: append(etcdclient.WindowOptions(), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, n: &h.read}, nil
		})),
	})
	if err != nil {
		return nil, err
	}
	etcdwatch.Install(h.cli) // as cmd/meshdns does
	// As cmd/meshdns configures its syncer, minus the periodic reconcile
	// (every 5 minutes by default: never within a run).
	h.syncer = registry.NewSyncer(registry.SyncerConfig{Client: h.cli, Prefix: c.Prefix, Store: h.store,
		ClusterID: cluster, ReloadJitter: 5 * time.Second,
		// The registry hands no memory back itself any more: as meshdns
		// does, after every completed load — but coalesced across the
		// hosts, since they share one heap (see freeOSMemory).
		OnLoadEnd: func(err error) {
			if err == nil {
				freeOSMemory()
			}
		}})
	return h, nil
}

func (h *fleetHost) start(ctx context.Context) {
	hctx, cancel := context.WithCancel(ctx)
	h.cancel = cancel
	go func() {
		defer close(h.done)
		if h.watchOnly {
			h.watchLoop(hctx)
			return
		}
		_ = h.syncer.Run(hctx)
	}()
}

// watchLoop is a watch-only host: one read of the registry unless resuming,
// then a watch from the next revision, resumed after errors. Like the
// syncer it asks for progress notifications and sends a progress request
// every 2 s (which etcd's gRPC proxy does not forward), so etcd sees the
// same requests from it as from meshdns; it decodes and applies nothing.
func (h *fleetHost) watchLoop(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		if h.rev.Load() == 0 {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := h.cli.Get(rctx, h.prefix, clientv3.WithPrefix())
			cancel()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			h.rev.Store(resp.Header.Revision)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := h.cli.Watch(wctx, h.prefix, clientv3.WithPrefix(), clientv3.WithRev(h.rev.Load()+1),
			clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	watch:
		for {
			select {
			case <-tick.C:
				rctx, rcancel := context.WithTimeout(wctx, 2*time.Second)
				_ = h.cli.RequestProgress(rctx)
				rcancel()
			case resp, ok := <-wch:
				if !ok || resp.Err() != nil {
					break watch
				}
				now := time.Now()
				t := h.track.Load()
				for _, ev := range resp.Events {
					if t != nil {
						t.seen(string(ev.Kv.Key), h.i, now)
					}
					h.rev.Store(max(h.rev.Load(), ev.Kv.ModRevision))
				}
				h.events.Add(int64(len(resp.Events)))
			}
		}
		cancel()
		if ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// stop ends the syncer and closes the connection.
func (h *fleetHost) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
	h.cli.Close()
}

// saveCopy writes the host's snapshot as its local copy.
func (h *fleetHost) saveCopy(path, prefix string) error {
	return registry.WriteCopy(path, prefix, h.syncer.ClusterID(), h.store.Snapshot())
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// fleetWrite is one registry write and when each host saw it.
type fleetWrite struct {
	Kind    string
	Key     string
	Start   time.Time // before the write call
	Written time.Time // when the write call returned
	Err     error
	// DNS marks a write also checked on the meshdns processes.
	DNS bool
	// arrive[i] is when host i (then meshdns j at hosts+j) saw the write,
	// in Unix nanoseconds; 0 if not (yet).
	arrive []atomic.Int64
	left   atomic.Int64 // receivers that have not seen it yet
}

// fleetTracker matches the events hosts apply to the writes that caused
// them, by key: a machine is written again only once every receiver has
// seen its previous write, so a key names at most one write in flight.
type fleetTracker struct {
	mu        sync.Mutex
	pending   map[string]*fleetWrite
	writes    []*fleetWrite
	receivers int // hosts + meshdns processes
	hosts     int
	dnsWG     sync.WaitGroup // DNS pollers
}

func newFleetTracker(hosts, dns int) *fleetTracker {
	return &fleetTracker{pending: map[string]*fleetWrite{}, receivers: hosts + dns, hosts: hosts}
}

// begin registers a write of key before it is made, so that an event
// arriving before the write call returns is not missed.
func (t *fleetTracker) begin(kind, key string, dns bool) *fleetWrite {
	w := &fleetWrite{Kind: kind, Key: key, DNS: dns, arrive: make([]atomic.Int64, t.receivers)}
	n := t.hosts
	if dns {
		n = t.receivers
	}
	w.left.Store(int64(n))
	t.mu.Lock()
	t.pending[key] = w
	t.writes = append(t.writes, w)
	t.mu.Unlock()
	w.Start = time.Now()
	return w
}

// busy reports whether key has a write not yet seen everywhere.
func (t *fleetTracker) busy(key string) bool {
	t.mu.Lock()
	_, ok := t.pending[key]
	t.mu.Unlock()
	return ok
}

// seen records that receiver r saw key at now.
func (t *fleetTracker) seen(key string, r int, now time.Time) {
	t.mu.Lock()
	w := t.pending[key]
	t.mu.Unlock()
	if w == nil {
		return
	}
	if w.arrive[r].CompareAndSwap(0, now.UnixNano()) && w.left.Add(-1) == 0 {
		t.mu.Lock()
		if t.pending[key] == w {
			delete(t.pending, key)
		}
		t.mu.Unlock()
	}
}

// fail drops a write whose call failed.
func (t *fleetTracker) fail(w *fleetWrite, err error) {
	w.Err = err
	t.mu.Lock()
	if t.pending[w.Key] == w {
		delete(t.pending, w.Key)
	}
	t.mu.Unlock()
}

// outstanding is the number of writes some receiver has not seen yet.
func (t *fleetTracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// samples turns the tracker's writes into latency samples.
func (t *fleetTracker) samples() []writeSample {
	t.mu.Lock()
	ws := append([]*fleetWrite(nil), t.writes...)
	t.mu.Unlock()
	out := make([]writeSample, 0, len(ws))
	for _, w := range ws {
		if w.Err != nil || w.Written.IsZero() {
			continue
		}
		s := writeSample{DNS: w.DNS, Arrive: make([]time.Duration, len(w.arrive))}
		for i := range w.arrive {
			if ns := w.arrive[i].Load(); ns != 0 {
				s.Arrive[i] = time.Unix(0, ns).Sub(w.Written)
			} else {
				s.Arrive[i] = notSeen
			}
		}
		if !w.DNS {
			s.Arrive = s.Arrive[:t.hosts]
		}
		out = append(out, s)
	}
	return out
}

// freeOSMemory hands the heap's free memory back to the system after a
// host's load, as meshdns does after its own. A meshdns process does it
// for a heap of one registry; here every host shares one heap of N
// registries, and a full collection per host's load made a fleet's start
// cost N full collections of an N-registry heap (3 minutes for 1,000
// hosts, most of it in the collector). Requests are coalesced: at most one
// collection runs at a time, and the requests made meanwhile are served by
// one more when it ends.
func freeOSMemory() {
	if freeOSMem.pending.Swap(true) {
		return // one is queued already
	}
	go func() {
		freeOSMem.mu.Lock()
		defer freeOSMem.mu.Unlock()
		freeOSMem.pending.Store(false)
		debug.FreeOSMemory()
	}()
}

var freeOSMem struct {
	mu      sync.Mutex
	pending atomic.Bool
}
