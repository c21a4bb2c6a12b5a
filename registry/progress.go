package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Knowing that a watch is alive and current takes a word from etcd. Talking
// to etcd directly, the watch asks for a progress notification
// (RequestProgress) and etcd answers on the watch stream. etcd's gRPC proxy
// does not forward those requests (3.4 and 3.7 alike: it drops them), so
// behind a proxy a quiet watch hears nothing, however long it runs — and
// etcd's revision moves on with every write outside the prefix. The
// watchdog below uses progress notifications while they are answered and
// otherwise asks etcd whether anything under the prefix changed since the
// snapshot's revision (prefixUnchangedSince), which needs only ordinary
// reads, which the proxy forwards.

// maxQuietCheck bounds how far apart the prefix checks of a quiet watch
// behind a proxy drift (they back off from StallTimeout while each finds
// nothing missed, for the life of the watch): each costs etcd a walk of
// the prefix's index, about 2 µs a key (docs/proxy.md). It matches etcd's
// default interval of unasked progress notifications, which the proxy
// forwards; a cluster set to send those more often than StallTimeout makes
// the checks unnecessary.
const maxQuietCheck = 10 * time.Minute

// watchdog decides, for one watch, when the snapshot is current and when the
// watch has stalled. Only the watch loop's goroutine uses it.
type watchdog struct {
	s *Syncer
	// lastResp is when the watch last showed life (a response, or a check
	// that proved nothing was missed).
	lastResp time.Time
	// progressAnswered records that etcd answered a progress request on
	// this watch: the watch talks to etcd, not to a proxy.
	progressAnswered bool
	// progressAsked counts progress requests sent while none was answered;
	// after a few, the watch is taken to be behind a proxy and stops
	// asking (the proxy logs each one it drops as an error).
	progressAsked int
	// askedAt is when progress was last requested.
	askedAt time.Time
	// quietLimit is how long the watch may be quiet before the prefix is
	// checked: StallTimeout, doubling (to maxQuietCheck) with every check
	// that finds nothing missed. Events do not reset it: in a registry
	// written every minute or so, a check after every event would cost a
	// fleet more than it proves.
	quietLimit time.Duration
	// suspect is the snapshot revision at which a prefix check found
	// changes the watch had not delivered, at suspectAt; a check a stall
	// timeout later finding the same, with nothing heard meanwhile, tears
	// the watch down.
	suspect   int64
	suspectAt time.Time
}

func newWatchdog(s *Syncer) *watchdog {
	return &watchdog{s: s, lastResp: time.Now(), quietLimit: s.cfg.StallTimeout}
}

// heard records a response on the watch.
func (w *watchdog) heard() {
	w.lastResp = time.Now()
	w.suspect = 0
}

// progress records a progress notification. One that comes soon after a
// request answers it; etcd also sends them unasked (every 10 minutes by
// default), and the proxy forwards those.
func (w *watchdog) progress() {
	w.heard()
	if time.Since(w.askedAt) < w.s.cfg.ProgressInterval {
		w.progressAnswered = true
	}
}

// askProgress requests a progress notification, unless the watch looks to
// be behind a proxy: three requests went unanswered although etcd had moved
// past the snapshot (a proxy logs each request it drops as an error).
func (w *watchdog) askProgress(ctx context.Context) {
	if !w.progressAnswered {
		if w.progressAsked >= 3 {
			return
		}
		w.progressAsked++
	}
	w.askedAt = time.Now()
	rctx, cancel := context.WithTimeout(ctx, w.s.cfg.ProgressInterval)
	_ = w.s.cfg.Client.RequestProgress(rctx)
	cancel()
}

// tick runs every ProgressInterval. It returns an error when the watch
// must be torn down.
func (w *watchdog) tick(ctx context.Context) error {
	s := w.s
	quiet := time.Since(w.lastResp)
	if s.ready.Load() && quiet <= s.cfg.ProgressInterval {
		// The watch just spoke. Talking to etcd, keep asking it, so that
		// silence means something.
		if w.progressAnswered {
			w.askProgress(ctx)
		}
		return nil
	}
	// Not ready yet, or quiet: what does etcd say? A read of one key
	// costs etcd next to nothing and keeps LastContact fresh.
	cur, err := s.etcdRevision(ctx)
	if err != nil {
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s, and etcd did not answer: %v", errStalled, quiet.Round(time.Second), err)
		}
		return nil
	}
	if err := s.checkBehind(cur); err != nil {
		return err // etcd lost history the snapshot holds (restore.go)
	}
	rev := s.cfg.Store.Revision()
	if cur <= rev {
		// Nothing at all was written since the snapshot's revision (etcd
		// sends no progress notification then, proxy or not).
		w.heard()
		s.markReady()
		return nil
	}
	if w.progressAnswered {
		// Talking to etcd, which answers progress requests: silence past
		// the stall timeout while etcd moved on is a stuck watch.
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s while etcd moved on to revision %d", errStalled, quiet.Round(time.Second), cur)
		}
		w.askProgress(ctx)
		return nil
	}
	w.askProgress(ctx)
	if w.suspect == 0 && quiet <= w.quietLimit {
		return nil
	}
	if w.suspect != 0 && time.Since(w.suspectAt) < s.cfg.StallTimeout {
		return nil // changes were seen; give the watch a stall timeout to deliver them
	}
	// Behind a proxy (or before etcd answered a progress request): ask
	// etcd whether anything under the prefix changed since the snapshot.
	s.prefixChecks.Add(1)
	unchanged, now, err := s.prefixUnchangedSince(ctx, rev)
	why := "keys under the prefix changed after revision %d"
	switch {
	case err != nil && !errors.Is(err, rpctypes.ErrCompacted):
		if quiet > s.cfg.StallTimeout {
			return fmt.Errorf("%w for %s, and etcd did not answer a check of the prefix: %v", errStalled, quiet.Round(time.Second), err)
		}
		return nil
	case err != nil:
		// The snapshot's revision was compacted, and the syncer has no key
		// count of its own: whether something was deleted since cannot be
		// told. Treat it as a change not delivered.
		why = "revision %d was compacted, so the prefix cannot be compared with it"
	case unchanged:
		// Everything under the prefix is as at rev: the snapshot is etcd's
		// state at now, as a progress notification would have said.
		if now > rev {
			s.cfg.Store.Apply(now, nil)
		}
		w.heard()
		w.quietLimit = min(2*w.quietLimit, max(maxQuietCheck, s.cfg.StallTimeout))
		s.markReady()
		return nil
	}
	if w.suspect == rev {
		// Nothing heard for a stall timeout since the changes were seen.
		// The key count may be what is wrong; the next watch counts anew.
		s.keyCount = -1
		return fmt.Errorf("%w: "+why+", and the watch delivered nothing for %s",
			errStalled, rev, quiet.Round(time.Second))
	}
	w.suspect, w.suspectAt = rev, time.Now()
	return nil
}

// prefixUnchangedSince reports whether the keys under the prefix are now
// exactly as they were at revision rev, the snapshot's — none written
// since, none deleted — and returns the revision "now" is. Every key that
// exists now and was last written at or before rev existed at rev with the
// same value, so the keys now are a subset of those at rev; with as many
// keys as at rev they are the same. The count at rev is the syncer's
// (kept from the load and the events), or else read from etcd at rev, in
// one transaction with the read of now. etcd walks the prefix's index for
// these reads (3.4 reads the values too): the checks are kept rare (see
// watchdog.quietLimit).
func (s *Syncer) prefixUnchangedSince(ctx context.Context, rev int64) (bool, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	last := clientv3.OpGet(s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
	ops := []clientv3.Op{last}
	if s.keyCount < 0 {
		ops = append(ops, clientv3.OpGet(s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev)))
	}
	resp, err := s.cfg.Client.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return false, 0, err
	}
	s.contact()
	now := resp.Responses[0].GetResponseRange()
	if now == nil || len(resp.Responses) != len(ops) {
		return false, 0, fmt.Errorf("prefix check: etcd answered without the range responses asked for")
	}
	if len(ops) > 1 {
		then := resp.Responses[1].GetResponseRange()
		if then == nil {
			return false, 0, fmt.Errorf("prefix check: etcd answered without the count at revision %d", rev)
		}
		s.keyCount = then.Count
	}
	if len(now.Kvs) > 0 && now.Kvs[0].ModRevision > rev {
		return false, resp.Header.Revision, nil
	}
	return now.Count == s.keyCount, resp.Header.Revision, nil
}

// countKey keeps keyCount in step with an applied event: a put of version
// 1 created the key, a delete removed it.
func (s *Syncer) countKey(e *clientv3.Event) {
	if s.keyCount < 0 {
		return
	}
	switch {
	case e.Type == mvccpb.DELETE:
		s.keyCount--
	case e.Kv.Version == 1:
		s.keyCount++
	}
}

// stale reports whether an event of revision evRev is at or below the
// snapshot's revision: already applied, or covered by a check that proved
// the prefix unchanged up to it. A watch the proxy coalesced into one that
// started earlier may deliver those; they are skipped.
func stale(snapRev, evRev int64) bool { return evRev <= snapRev }
