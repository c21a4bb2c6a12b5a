package registry

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// readAll reads every key under the prefix at one revision — rev, or etcd's
// current one when rev is 0 — in pages, and hands each page to fn in key
// order. The next page is fetched while fn handles the last, so decoding
// and etcd's work overlap. It returns the revision read and the key count.
func (s *Syncer) readAll(ctx context.Context, rev int64, fn func([]*mvccpb.KeyValue)) (int64, int, error) {
	return s.readRange(ctx, s.cfg.Prefix, rev, fn)
}

// readRange is readAll for the keys under prefix (which lies under the
// registry's prefix).
func (s *Syncer) readRange(ctx context.Context, prefix string, rev int64, fn func([]*mvccpb.KeyValue)) (int64, int, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	get := func(key string, rev int64) (*clientv3.GetResponse, error) {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(s.pageSize())}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		resp, err := s.cfg.Client.Get(rctx, key, opts...)
		if err != nil {
			return nil, fmt.Errorf("read %s at revision %d: %w", key, rev, err)
		}
		s.contact()
		return resp, nil
	}
	// The first page fixes the revision every later page is read at.
	first, err := get(prefix, rev)
	if err != nil {
		return 0, 0, err
	}
	s.clusterID.Store(first.Header.ClusterId)
	if rev == 0 {
		rev = first.Header.Revision
	}
	type page struct {
		resp *clientv3.GetResponse
		err  error
	}
	pages := make(chan page, 1)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pace := s.newPacer(s.cfg.LoadRate)
	go func() {
		defer close(pages)
		resp := first
		for resp.More && len(resp.Kvs) > 0 {
			if !pace.wait(fctx, len(resp.Kvs)) {
				return
			}
			next, err := get(string(resp.Kvs[len(resp.Kvs)-1].Key)+"\x00", rev)
			select {
			case pages <- page{next, err}:
			case <-fctx.Done():
				return
			}
			if err != nil {
				return
			}
			resp = next
		}
	}()
	fn(first.Kvs)
	n := len(first.Kvs)
	for p := range pages {
		if p.err != nil {
			return 0, 0, p.err
		}
		fn(p.resp.Kvs)
		n += len(p.resp.Kvs)
	}
	// The fetcher also stops, without a page, when ctx ends (while paced,
	// or racing a failed read): that is no complete read.
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	return rev, n, nil
}

func eventOf(kv *mvccpb.KeyValue) Event {
	return Event{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}

// getAt reads one key as it was at revision rev, for Load.ResolveClaims.
func (s *Syncer) getAt(ctx context.Context) func(key string, rev int64) (Event, bool, error) {
	return func(key string, rev int64) (Event, bool, error) {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		resp, err := s.cfg.Client.Get(rctx, key, clientv3.WithRev(rev))
		if err != nil || len(resp.Kvs) == 0 {
			return Event{}, false, err
		}
		return eventOf(resp.Kvs[0]), true, nil
	}
}
