package main

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshdns/meshdns/dnsserver"
	"github.com/meshdns/meshdns/forward"
	"github.com/meshdns/meshdns/zones"
)

// runtimeSettings applies the settings that may change while meshdns runs
// (at start and on SIGHUP): TTLs, region, health awareness, default org, forwarding, rate
// limits, TCP connection caps, log level and query log. Everything else is
// fixed at start.
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
}

func (o *options) effectiveNegativeTTL() time.Duration {
	if o.negativeTTL == 0 {
		return o.ttl
	}
	return o.negativeTTL
}

// dnsConfig is the server configuration for o; fwd may be nil.
func (r *runtimeSettings) dnsConfig(o *options) dnsserver.Config {
	cfg := dnsserver.Config{
		Listen:     o.listen,
		DefaultOrg: o.defaultOrg,
		Zones: zones.Config{
			TTL:          uint32(o.ttl / time.Second),
			NegTTL:       uint32(o.effectiveNegativeTTL() / time.Second),
			ServerRegion: o.region,
			IgnoreHealth: !o.healthAware,
		},
		ForwardTimeout: o.forwardTimeout,
		RateLimit:      o.rateLimit,
		ErrorRateLimit: o.errorRateLimit,
		MaxTCPConns:    o.maxTCPConns,
		UDPBatch:       o.udpBatch || o.udpBlocking,
		UDPBlocking:    o.udpBlocking,
		UDPWorkers:     o.udpWorkers,
		Observer:       r.obs,
		Log:            r.log.Named("dns"),
	}
	cfg.MaxTCPConnsPerPrefix = o.maxTCPConnsPerPfx
	// 0 means "off" on the command line, "the default" in the Config.
	cfg.RateLimitSlip = cmp.Or(o.rateLimitSlip, -1)
	cfg.AnswerCacheBytes = cmp.Or(o.answerCacheBytes, -1)
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
	if r.srv != nil {
		r.srv.Reconfigure(r.dnsConfig(o))
	}
	r.current = o
	return nil
}

// restartOnly lists the settings that differ between a and b but take
// effect only when meshdns restarts.
func restartOnly(a, b *options) []string {
	var changed []string
	diff := func(name string, same bool) {
		if !same {
			changed = append(changed, name)
		}
	}
	diff("listen", slices.Equal(a.listen, b.listen))
	diff("http", a.http == b.http)
	diff("etcd-endpoints", slices.Equal(a.etcdEndpoints, b.etcdEndpoints))
	diff("etcd-prefix", a.etcdPrefix == b.etcdPrefix)
	diff("etcd-cacert", a.etcdCACert == b.etcdCACert)
	diff("etcd-cert", a.etcdCert == b.etcdCert)
	diff("etcd-key", a.etcdKey == b.etcdKey)
	diff("etcd-user", a.etcdUser == b.etcdUser)
	diff("data-dir", a.dataDir == b.dataDir)
	diff("embedded-etcd-url", a.embeddedEtcdURL == b.embeddedEtcdURL)
	diff("embedded-etcd-peer-url", a.embeddedEtcdPeerURL == b.embeddedEtcdPeerURL)
	diff("udp-batch", a.udpBatch == b.udpBatch)
	diff("udp-blocking", a.udpBlocking == b.udpBlocking)
	diff("pprof", a.pprof == b.pprof)
	diff("udp-workers", a.udpWorkers == b.udpWorkers)
	diff("reconcile-interval", a.reconcileInterval == b.reconcileInterval)
	diff("local-copy-interval", a.localCopyInterval == b.localCopyInterval)
	diff("load-rate", a.loadRate == b.loadRate)
	diff("load-jitter", a.loadJitter == b.loadJitter)
	diff("demo", a.demo == b.demo)
	diff("log-format", a.logFormat == b.logFormat)
	return changed
}
