package etcdwatch

import (
	"context"
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// script is a watch stream that returns its responses, then its error.
type script struct {
	grpc.ClientStream
	resps []*pb.WatchResponse
	err   error
}

func (s *script) Recv() (*pb.WatchResponse, error) {
	if len(s.resps) == 0 {
		return nil, s.err
	}
	r := s.resps[0]
	s.resps = s.resps[1:]
	return r, nil
}

func (s *script) Send(*pb.WatchRequest) error { return nil }

func put(key string, rev int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
}

// TestReaderJoinsFragments: the parts of a fragmented response (etcd
// splits one revision's events when they exceed its request size) reach
// the channel as one response with every event and the last part's
// header; a stream that then fails ends with the failure.
func TestReaderJoinsFragments(t *testing.T) {
	h := &pb.ResponseHeader{ClusterId: 7, Revision: 9}
	s := &script{resps: []*pb.WatchResponse{
		{Header: &pb.ResponseHeader{ClusterId: 7}, Created: true},
		{Header: &pb.ResponseHeader{ClusterId: 7}, Fragment: true, Events: []*mvccpb.Event{put("a", 9)}},
		{Header: &pb.ResponseHeader{ClusterId: 7}, Fragment: true, Events: []*mvccpb.Event{put("b", 9)}},
		{Header: h, Events: []*mvccpb.Event{put("c", 9)}},
		{Header: &pb.ResponseHeader{ClusterId: 7, Revision: 10}, Events: []*mvccpb.Event{put("d", 10)}},
	}, err: io.EOF}
	out := make(chan clientv3.WatchResponse, 10)
	r := reader{ctx: context.Background(), out: out}
	err := r.run(s)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("run: %v, want the stream's EOF", err)
	}
	r.fail(err)
	close(out)
	var got []clientv3.WatchResponse
	for resp := range out {
		got = append(got, resp)
	}
	if len(got) != 3 {
		t.Fatalf("%d responses, want 3 (created not asked for): %+v", len(got), got)
	}
	if got[0].Header != h || len(got[0].Events) != 3 || string(got[0].Events[2].Kv.Key) != "c" {
		t.Errorf("joined response %+v, want a, b, c under the last part's header", got[0])
	}
	if len(got[1].Events) != 1 || got[1].Header.Revision != 10 {
		t.Errorf("second response %+v", got[1])
	}
	if !got[2].Canceled || got[2].Err() == nil || got[2].Header == nil {
		t.Errorf("last response %+v, want cancelled with the stream's error", got[2])
	}
}

// TestReaderCancelled: a watch etcd cancels (here: no leader) passes the
// cancellation on with its reason as clientv3's error, and reading stops.
func TestReaderCancelled(t *testing.T) {
	s := &script{resps: []*pb.WatchResponse{
		{Header: &pb.ResponseHeader{}, Canceled: true, CancelReason: rpctypes.ErrGRPCNoLeader.Error()},
		{Header: &pb.ResponseHeader{}, Events: []*mvccpb.Event{put("never", 3)}},
	}}
	out := make(chan clientv3.WatchResponse, 10)
	r := reader{ctx: context.Background(), out: out}
	if err := r.run(s); err != nil {
		t.Fatalf("run: %v, want nil after a cancelled response", err)
	}
	close(out)
	resp := <-out
	if !resp.Canceled {
		t.Fatalf("response %+v, want cancelled", resp)
	}
	if _, more := <-out; more {
		t.Error("a response after the cancellation")
	}
	if len(s.resps) != 1 {
		t.Error("the stream was read past the cancellation")
	}
}

// TestReason: gRPC status errors give their description, so etcd's own
// messages map back to rpctypes errors (ErrNoLeader).
func TestReason(t *testing.T) {
	resp := clientv3.WatchResponse{Canceled: true, CancelReason: reason(rpctypes.ErrGRPCNoLeader)}
	if !errors.Is(resp.Err(), rpctypes.ErrNoLeader) {
		t.Errorf("Err %v, want ErrNoLeader", resp.Err())
	}
	if got := reason(io.EOF); got == "" {
		t.Error("no reason for EOF")
	}
	if got := reason(errors.New("boom")); got != "boom" {
		t.Errorf("reason %q", got)
	}
}
