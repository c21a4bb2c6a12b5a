package main

import (
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/forward"
)

// runtimeSettings applies the settings that may change while meshdns runs
// (at start and on SIGHUP), the live ones of settingTable: through the
// server's Reconfigure, the forwarder, the log level, the query log and
// the memory tuner. The restart ones are fixed at start.
type runtimeSettings struct {
	mu      sync.Mutex
	current *options
	level   zap.AtomicLevel
	log     *zap.Logger
	srv     *dnsserver.Server
	fwd     *forward.Forwarder
	fwdObs  forward.Observer
	qlog    *queryLog
	obs     dnsserver.Observer
	mem     *memoryTuner // nil: memory settings left alone (tests)
}

func (o *options) effectiveNegativeTTL() time.Duration {
	if o.negativeTTL == 0 {
		return o.ttl
	}
	return o.negativeTTL
}

// dnsConfig is the server configuration for o, from the settings'
// server functions (settingTable); fwd may be nil.
func (r *runtimeSettings) dnsConfig(o *options) dnsserver.Config {
	cfg := dnsserver.Config{Observer: r.obs, Log: r.log.Named("dns")}
	for _, s := range settingTable {
		if s.server != nil {
			s.server(o, &cfg)
		}
	}
	// Only a non-nil *Forwarder goes into the interface: a typed nil
	// would not compare equal to nil and the server would call it.
	if r.fwd != nil {
		cfg.Forwarder = r.fwd
	}
	return cfg
}

// setForwarder makes the forwarder for o's upstreams. An unchanged
// upstream list keeps the forwarder, and with it the cache.
func (r *runtimeSettings) setForwarder(o *options) error {
	if len(o.upstream) == 0 {
		r.fwd = nil
		return nil
	}
	if r.fwd != nil && r.current != nil && slices.Equal(r.current.upstream, o.upstream) &&
		r.current.forwardCacheSize == o.forwardCacheSize &&
		r.current.forwardCacheBytesN == o.forwardCacheBytesN && r.current.forwardCacheMaxN == o.forwardCacheMaxN {
		return nil
	}
	// The flags and forward.Config agree: 0 turns the cache off.
	f, err := forward.New(forward.Config{Upstreams: o.upstream, CacheSize: o.forwardCacheSize, CacheBytes: int(o.forwardCacheBytesN),
		MaxCacheable: int(o.forwardCacheMaxN), Timeout: o.forwardTimeout, Observer: r.fwdObs})
	if err != nil {
		return err
	}
	r.fwd = f
	return nil
}

// apply makes o the running configuration. The server swaps its settings
// atomically: queries in flight finish with the old ones, none is dropped,
// and the registry snapshot is untouched.
func (r *runtimeSettings) apply(o *options) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.setForwarder(o); err != nil {
		return err
	}
	r.level.SetLevel(parseLevel(o.logLevel))
	r.qlog.setEvery(o.queryLogSample)
	if r.mem != nil {
		r.mem.apply(o)
	}
	if r.srv != nil {
		r.srv.Reconfigure(r.dnsConfig(o))
	}
	r.current = o
	return nil
}
