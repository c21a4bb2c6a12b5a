package registry

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// A fleet of thousands of servers on one etcd cluster must not read the
// whole registry all at once: after a compaction overtook every watch, a
// restore, or a fleet-wide restart without local copies, each server needs
// a full load, and etcd serves them all. Every full load therefore waits a
// random delay in [0, ReloadJitter) first (spreadLoad), and full reads —
// loads and reconciles — fetch their pages at LoadRate keys per second at
// most (pacer), so a whole fleet reloading together asks etcd for at most
// servers × LoadRate keys a second, spread over the jitter.

// spreadLoad waits before a full load, once per load needed (not again
// for retries of a failed one, which back off on their own). It reports
// false if ctx ended.
func (s *Syncer) spreadLoad(ctx context.Context) bool {
	if s.loadSpread || s.cfg.ReloadJitter <= 0 {
		return ctx.Err() == nil
	}
	s.loadSpread = true
	wait := rand.N(s.cfg.ReloadJitter)
	s.cfg.Log.Info("full load after a random wait, spreading a fleet's loads", zap.Duration("wait", wait.Round(time.Millisecond)))
	return s.sleep(ctx, wait)
}

// pageSize is the page size of full reads: PageSize, and when paced no more
// than a second's worth of keys, so each page is followed by a short wait
// rather than a large page by a long one.
func (s *Syncer) pageSize() int64 {
	if s.cfg.LoadRate > 0 {
		return max(1, min(s.cfg.PageSize, int64(s.cfg.LoadRate)))
	}
	return s.cfg.PageSize
}

// pacer spaces the pages of one full read so that it reads at most rate
// keys a second on average. A zero rate never waits.
type pacer struct {
	s     *Syncer
	rate  int
	start time.Time
	keys  int
}

func (s *Syncer) newPacer(rate int) *pacer { return &pacer{s: s, rate: rate, start: s.clock.Now()} }

// wait records that n more keys were read and sleeps until reading more
// keeps the average at or below the rate. It reports false if ctx ended.
func (p *pacer) wait(ctx context.Context, n int) bool {
	p.keys += n
	if d := paceDelay(p.rate, p.keys, p.s.since(p.start)); d > 0 {
		return p.s.sleep(ctx, d)
	}
	return ctx.Err() == nil
}

// paceDelay is how long to wait, elapsed after the start of a read that got
// keys keys so far, before reading more at rate keys a second.
func paceDelay(rate, keys int, elapsed time.Duration) time.Duration {
	if rate <= 0 {
		return 0
	}
	due := time.Duration(float64(keys) / float64(rate) * float64(time.Second))
	return max(0, due-elapsed)
}
