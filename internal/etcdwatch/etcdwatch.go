// Package etcdwatch is a clientv3.Watcher that reads each watch's gRPC
// stream in one goroutine and hands its responses straight to the watch's
// channel.
//
// clientv3's own watcher multiplexes many watches over one stream: a
// response passes from the stream's reader to a dispatcher goroutine, from
// there to the watch's own goroutine and buffer, and only then to the
// channel — three goroutine hops per response. meshdns runs one watch per
// client, so the multiplexing buys nothing; in the fleet benchmark (1,000
// hosts in one process, issue 15) those hops were a quarter of the hosts'
// CPU. Here a response is received, converted and sent on the channel by
// one goroutine.
//
// What differs from clientv3's watcher, and why meshdns does not mind:
//
//   - A stream that fails (a member or gRPC proxy restarted, the
//     connection lost) ends the watch: the channel gets one last response
//     with Canceled set and the error as CancelReason, then closes.
//     clientv3 reopens the stream itself and resumes. The registry's
//     syncer resumes the same way (from its revision, without a full load)
//     and logs why.
//   - The channel buffers at most ChanSize responses; beyond that the
//     reader waits, and gRPC flow control (a 4 MiB window, see
//     etcdclient.WindowOptions) holds the sender. clientv3 buffers without
//     bound. A reader that is that far behind and stays there may have its
//     stream cancelled by a gRPC proxy; it then resumes as above.
//   - One stream per Watch call, never shared between calls.
//
// As with clientv3's, Watch returns once etcd confirmed the watch (or the
// watch ended), and while etcd cannot be reached it waits for it until the
// context ends or the watcher is closed.
package etcdwatch

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// ChanSize is how many responses a watch's channel holds before its reader
// waits. The registry's syncer applies up to 256 queued responses at once.
const ChanSize = 256

// Watcher is a clientv3.Watcher over one gRPC connection. Its zero value is
// not usable; make one with New.
type Watcher struct {
	remote pb.WatchClient
	opts   []grpc.CallOption

	mu      sync.Mutex
	closed  bool
	streams map[*stream]struct{}
}

var _ clientv3.Watcher = (*Watcher)(nil)

// New returns a watcher whose watches are streams on conn, for example a
// clientv3.Client's ActiveConnection (which carries the client's auth
// token and TLS).
func New(conn grpc.ClientConnInterface) *Watcher {
	return &Watcher{
		remote: pb.NewWatchClient(conn),
		// As clientv3's defaults: wait for the connection rather than fail
		// at once while it reconnects, and take responses of any size
		// (one transaction's events arrive in one response).
		opts:    []grpc.CallOption{grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(math.MaxInt32)},
		streams: map[*stream]struct{}{},
	}
}

// stream is one watch: its gRPC stream once open, and a lock for sends
// (the create request, then progress requests from other goroutines).
type stream struct {
	mu     sync.Mutex
	ws     pb.Watch_WatchClient // nil until open
	cancel context.CancelFunc
}

func (s *stream) send(r *pb.WatchRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws == nil {
		return errNotOpen
	}
	return s.ws.Send(r)
}

var (
	errNotOpen = errors.New("etcdwatch: no watch stream open")
	errClosed  = errors.New("etcdwatch: watcher closed")
)

// Watch opens a watch on key with clientv3's watch options (WithPrefix,
// WithRange, WithRev, WithProgressNotify, WithCreatedNotify, WithPrevKV,
// WithFilterPut, WithFilterDelete, WithFragment). The channel closes when
// ctx is done (with no last response), when the watch is cancelled by
// etcd or its stream fails (after a last response whose Err says why), or
// when the watcher is closed.
func (w *Watcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	op := clientv3.OpWatch(key, opts...)
	create := &pb.WatchCreateRequest{
		Key:            op.KeyBytes(),
		RangeEnd:       op.RangeBytes(),
		StartRevision:  op.Rev(),
		ProgressNotify: op.IsProgressNotify(),
		PrevKv:         op.IsPrevKV(),
		Fragment:       op.IsFragment(),
	}
	if op.IsFilterPut() {
		create.Filters = append(create.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if op.IsFilterDelete() {
		create.Filters = append(create.Filters, pb.WatchCreateRequest_NODELETE)
	}
	ch := make(chan clientv3.WatchResponse, ChanSize)
	sctx, cancel := context.WithCancel(ctx)
	s := &stream{cancel: cancel}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		cancel()
		close(ch)
		return ch
	}
	w.streams[s] = struct{}{}
	w.mu.Unlock()
	// Like clientv3's, Watch returns once etcd has confirmed the watch (its
	// first response) or the watch has ended: a caller that writes after
	// Watch returns sees its writes on a watch from the current revision.
	confirmed := make(chan struct{})
	var confirm sync.Once
	markConfirmed := func() { confirm.Do(func() { close(confirmed) }) }
	go func() {
		defer func() {
			w.mu.Lock()
			delete(w.streams, s)
			w.mu.Unlock()
			cancel() // first: unblocks a progress request's Send
			s.mu.Lock()
			s.ws = nil // a progress request racing the end is skipped
			s.mu.Unlock()
			close(ch)
			markConfirmed()
		}()
		r := reader{ctx: sctx, out: ch, createdNotify: op.IsCreatedNotify(), heard: markConfirmed}
		ws, err := w.remote.Watch(sctx, w.opts...)
		if err == nil {
			s.mu.Lock()
			s.ws = ws
			err = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}})
			s.mu.Unlock()
		}
		if err == nil {
			err = r.run(ws)
		}
		if err != nil && sctx.Err() == nil {
			// The stream failed on its own, not because the watch's
			// context ended or the watcher was closed: say why.
			r.fail(err)
		}
	}()
	select {
	case <-confirmed:
	case <-sctx.Done():
	}
	return ch
}

// reader turns one stream's responses into clientv3 watch responses.
type reader struct {
	ctx           context.Context
	out           chan<- clientv3.WatchResponse
	createdNotify bool
	frag          *pb.WatchResponse // fragments gathered so far
	// heard, when set, is called once, at the first response.
	heard func()
}

// run receives until the stream ends, etcd cancels the watch (nil: the
// last response was sent) or ctx is done.
func (r *reader) run(ws pb.Watch_WatchClient) error {
	for {
		pr, err := ws.Recv()
		if err != nil {
			return err
		}
		if r.heard != nil {
			r.heard()
			r.heard = nil
		}
		if pr.Fragment {
			// Part of a response too large for one message: gather the
			// events until the last part.
			if r.frag == nil {
				r.frag = pr
			} else {
				r.frag.Events = append(r.frag.Events, pr.Events...)
			}
			continue
		}
		if r.frag != nil {
			r.frag.Events = append(r.frag.Events, pr.Events...)
			r.frag.Header, r.frag.Fragment = pr.Header, false
			pr, r.frag = r.frag, nil
		}
		if pr.Created && !pr.Canceled && !r.createdNotify {
			continue
		}
		resp := clientv3.WatchResponse{
			Header:          pr.Header,
			CompactRevision: pr.CompactRevision,
			Canceled:        pr.Canceled,
			Created:         pr.Created,
			CancelReason:    pr.CancelReason,
		}
		if resp.Header == nil {
			resp.Header = &pb.ResponseHeader{}
		}
		if len(pr.Events) > 0 {
			resp.Events = make([]*clientv3.Event, len(pr.Events))
			for i, e := range pr.Events {
				resp.Events[i] = (*clientv3.Event)(e)
			}
		}
		if !r.send(resp) {
			return nil // ctx done
		}
		if pr.Canceled {
			// etcd ended the watch (compacted revision, no leader,
			// permission denied): the response above says why.
			return nil
		}
	}
}

func (r *reader) send(resp clientv3.WatchResponse) bool {
	select {
	case r.out <- resp:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// fail ends the watch with err as a last, cancelled response. Its Err()
// is err through clientv3's error table (a "no leader" stays
// rpctypes.ErrNoLeader).
func (r *reader) fail(err error) {
	r.send(clientv3.WatchResponse{Header: &pb.ResponseHeader{}, Canceled: true, CancelReason: reason(err)})
}

// reason is err's message as etcd would put it in a cancelled response:
// a gRPC status's description ("etcdserver: no leader"), or the error's
// text.
func reason(err error) string {
	if errors.Is(err, io.EOF) {
		return "watch stream closed by the server"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// RequestProgress asks etcd for a progress notification on every open
// watch of this watcher. Watches whose stream is not open yet are skipped;
// with none open it returns an error, as nothing was asked.
func (w *Watcher) RequestProgress(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	ss := make([]*stream, 0, len(w.streams))
	for s := range w.streams {
		ss = append(ss, s)
	}
	w.mu.Unlock()
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
	var first error
	sent := 0
	for _, s := range ss {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch err := s.send(req); {
		case err == nil:
			sent++
		case !errors.Is(err, errNotOpen) && first == nil:
			first = err
		}
	}
	if first == nil && sent == 0 {
		return errNotOpen // nothing to ask on: no watch, or none open yet
	}
	return first
}

// Close ends every watch of this watcher; their channels close.
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for s := range w.streams {
		s.cancel()
	}
	return nil
}

// Install makes cli watch through a Watcher on cli's own connection:
// cli.Watch and cli.RequestProgress, and anything handed cli as its
// clientv3.Watcher, use it from then on; cli.Close closes it. Call it
// right after clientv3.New, before the first watch.
func Install(cli *clientv3.Client) {
	cli.Watcher = New(cli.ActiveConnection())
}
