package forward

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Config configures a Forwarder.
type Config struct {
	// Upstreams are resolver addresses (see ParseUpstream), asked in order.
	Upstreams []string
	// CacheSize bounds the number of cached replies; 0 turns caching
	// off, as --forward-cache-size 0 does (DefaultCacheSize is the
	// flag's default). Negative values are an error.
	CacheSize int
	// CacheBytes bounds the memory of the cache: the packed replies, their
	// keys and a fixed overhead per entry. 0 turns caching off, as
	// --forward-cache-bytes 0 does (DefaultCacheBytes is the flag's
	// default). Negative values are an error.
	CacheBytes int
	// MaxCacheable is the longest reply (packed, in bytes) that is cached;
	// longer ones are forwarded every time. 0 means DefaultMaxCacheable.
	MaxCacheable int
	// MaxInFlight and MaxInFlightPerOrg bound the questions waiting on
	// the upstreams, all orgs together and per org (see inflight); 0
	// means DefaultMaxInFlight and DefaultMaxInFlightPerOrg.
	MaxInFlight       int
	MaxInFlightPerOrg int
	// Timeout bounds one Forward call when its context has no deadline.
	Timeout time.Duration
	// Observer, if set, is told about upstream exchanges and cache use.
	Observer Observer
}

// DefaultCacheSize is the default of --forward-cache-size, a good
// Config.CacheSize.
const DefaultCacheSize = 10000

// DefaultCacheBytes is the default of --forward-cache-bytes, a good
// Config.CacheBytes: 32 MiB.
const DefaultCacheBytes = 32 << 20

// DefaultMaxCacheable is the longest reply cached when
// Config.MaxCacheable is 0. Nearly every reply fits in the 1232 bytes of
// UDP; the few that come over TCP (large TXT sets, DNSSEC keys) in this.
const DefaultMaxCacheable = 16 << 10

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 2 * time.Second

// udpSize is the EDNS(0) buffer we advertise upstream (DNS Flag Day 2020):
// large enough for most replies, small enough not to fragment.
const udpSize = 1232

// Observer is told what the forwarder does, for metrics. Its methods are
// called on the query path and must be quick.
type Observer interface {
	// ObserveUpstream reports one exchange with an upstream: proto is
	// "udp" or "tcp", err nil on success.
	ObserveUpstream(upstream, proto string, d time.Duration, err error)
	// ObserveCache reports a lookup in the reply cache.
	ObserveCache(hit bool)
	// ObserveProbe reports a health probe of an upstream: alive is its
	// verdict (see upstream.go).
	ObserveProbe(upstream string, alive bool)
	// ObserveBusy reports a question refused because its org had its
	// share of questions in flight (ErrBusy).
	ObserveBusy()
}

// Forwarder resolves questions through upstream resolvers. It implements
// dnsserver.Forwarder and is safe for concurrent use.
type Forwarder struct {
	ups     []*upstream
	cache   *cache
	timeout time.Duration
	obs     Observer
	flight  singleflight.Group
	busy    *inflight
	now     func() time.Time
}

// New checks the upstream addresses and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("no upstream resolvers given")
	}
	f := &Forwarder{timeout: cfg.Timeout, obs: cfg.Observer, now: time.Now}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.obs == nil {
		f.obs = nopObserver{}
	}
	for _, s := range cfg.Upstreams {
		addr, err := ParseUpstream(s)
		if err != nil {
			return nil, err
		}
		f.ups = append(f.ups, &upstream{addr: addr})
	}
	entries, bytes, maxMsg := cfg.CacheSize, cfg.CacheBytes, cfg.MaxCacheable
	if entries < 0 || bytes < 0 {
		return nil, fmt.Errorf("cache size %d entries, %d bytes: must be 0 (no cache) or more", entries, bytes)
	}
	if maxMsg <= 0 {
		maxMsg = DefaultMaxCacheable
	}
	if entries > 0 && bytes > 0 {
		f.cache = newCache(bytes, entries, maxMsg)
	}
	total, perOrg := cfg.MaxInFlight, cfg.MaxInFlightPerOrg
	if total <= 0 {
		total = DefaultMaxInFlight
	}
	if perOrg <= 0 {
		perOrg = DefaultMaxInFlightPerOrg
	}
	f.busy = newInflight(total, perOrg)
	if o, ok := f.obs.(UpstreamsObserver); ok {
		o.ObserveUpstreams(f.Upstreams())
	}
	return f, nil
}

// UpstreamsObserver is an Observer that wants to know the upstreams of a
// new Forwarder, all healthy until a probe says otherwise (so their health
// shows before the first probe).
type UpstreamsObserver interface {
	ObserveUpstreams(addrs []string)
}

// Upstreams returns the upstream addresses in the order they are asked.
func (f *Forwarder) Upstreams() []string {
	out := make([]string, len(f.ups))
	for i, u := range f.ups {
		out[i] = u.addr
	}
	return out
}

// CacheLen is the number of cached replies.
func (f *Forwarder) CacheLen() int {
	n, _ := f.CacheUsage()
	return n
}

// CacheUsage is the number of cached replies and the bytes they cost.
func (f *Forwarder) CacheUsage() (entries, bytes int) {
	if f.cache == nil {
		return 0, 0
	}
	return f.cache.usage()
}

// OrgCacheUsage is CacheUsage for one org's part of the cache.
func (f *Forwarder) OrgCacheUsage(org string) (entries, bytes int) {
	if f.cache == nil {
		return 0, 0
	}
	return f.cache.orgUsage(org)
}

// InFlight is the number of org's questions waiting on the upstreams.
func (f *Forwarder) InFlight(org string) int { return f.busy.count(org) }

// Forward answers req (one question) for an asker in org, from org's part
// of the cache or an upstream. The reply carries req's id, and req's
// question name, letter case included, as its question and as the owner
// of every record owned by that name. It fails when every upstream failed,
// ctx's deadline passed (ctx's cancellation is not watched: the deadline
// bounds the call), or org has its share of questions in flight (ErrBusy).
func (f *Forwarder) Forward(ctx context.Context, org string, req *dns.Msg) (*dns.Msg, error) {
	if len(req.Question) != 1 {
		return nil, fmt.Errorf("forward: want exactly one question, got %d", len(req.Question))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	key := cacheKey(req)
	if f.cache != nil {
		if r := f.cache.get(org, key, f.now()); r != nil {
			f.obs.ObserveCache(true)
			return askersCase(r, req), nil
		}
		f.obs.ObserveCache(false)
	}
	// Waiting on the upstreams takes a share of org's in-flight questions,
	// also when joining a flight: every waiter is a goroutine held.
	if !f.busy.acquire(org) {
		f.obs.ObserveBusy()
		return nil, fmt.Errorf("forward %s %s for org %q: %w", req.Question[0].Name, dns.TypeToString[req.Question[0].Qtype], org, ErrBusy)
	}
	defer f.busy.release(org)
	// Identical questions of one org in flight share one upstream query: a
	// burst of lookups for one expired name must not become a burst
	// upstream. Another org's question is another flight (its own upstream
	// query, its own answer). The flight runs to the first caller's
	// deadline (the forward timeout) whatever happens to that caller, and
	// every caller waits for its end: one that gave up earlier would leave
	// the flight to end a moment later and catch the next caller, who
	// would then fail at once.
	deadline, _ := ctx.Deadline()
	ch := f.flight.DoChan(org+"\x00"+key, func() (any, error) {
		fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		r, err := f.resolve(fctx, req)
		if err == nil && f.cache != nil {
			f.cache.put(org, key, r, f.now())
		}
		return r, err
	})
	res := <-ch
	if res.Err != nil {
		return nil, res.Err
	}
	return askersCase(res.Val.(*dns.Msg).Copy(), req), nil
}

// askersCase gives r (a copy the caller owns) req's id and question, and
// writes the question name as req has it over every owner name equal to
// it but for case: an asker sees its own letter case (0x20), never the one
// of whoever asked first.
func askersCase(r, req *dns.Msg) *dns.Msg {
	r.Id = req.Id
	r.Question = []dns.Question{req.Question[0]}
	name := req.Question[0].Name
	for _, s := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range s {
			if h := rr.Header(); h.Name != name && strings.EqualFold(h.Name, name) {
				h.Name = name
			}
		}
	}
	return r
}

// resolve asks the live upstreams in turn. Each gets an equal share of
// the time left, so one that does not answer leaves time for the next.
// Upstreams that failed their probes are not asked (and are probed again):
// the DNS server's goroutines wait for this call, and must not all wait on
// a resolver that is gone. An exchange that fails only makes its upstream
// suspect, to be probed; see upstream.go.
func (f *Forwarder) resolve(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	q := upstreamQuery(req)
	order := make([]*upstream, 0, len(f.ups))
	var errs []string
	for _, u := range f.ups {
		if u.dead.Load() {
			f.suspect(u)
			errs = append(errs, fmt.Sprintf("%s: failing its health probes, not asked", u.addr))
			continue
		}
		order = append(order, u)
	}
	var last *dns.Msg
	for i, u := range order {
		deadline, _ := ctx.Deadline()
		share := time.Until(deadline) / time.Duration(len(order)-i)
		if share <= 0 {
			break
		}
		actx, cancel := context.WithTimeout(ctx, share)
		r, err := f.exchange(actx, u, q)
		cancel()
		if err != nil {
			f.suspect(u)
			errs = append(errs, fmt.Sprintf("%s: %v", u.addr, err))
			continue
		}
		if u.dead.Load() {
			u.dead.Store(false) // it answered: alive, whatever a probe said
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			// This upstream cannot help (broken, or it refuses us);
			// another may. Its reply stands if none can.
			last = r
			errs = append(errs, fmt.Sprintf("%s: %s", u.addr, dns.RcodeToString[r.Rcode]))
			continue
		}
		return r, nil
	}
	if last != nil {
		return last, nil
	}
	if len(errs) == 0 {
		errs = append(errs, "no time left to ask any")
	}
	return nil, fmt.Errorf("forward %s %s: every upstream failed: %s", req.Question[0].Name,
		dns.TypeToString[req.Question[0].Qtype], strings.Join(errs, "; "))
}

// upstreamQuery is the query sent upstream: a fresh random id (the
// client's id is predictable to whoever sent it, which would help spoof
// our cache), recursion desired, and an EDNS(0) buffer so that most
// replies fit in UDP. The DO bit is kept if the asker set it.
func upstreamQuery(req *dns.Msg) *dns.Msg {
	q := new(dns.Msg)
	q.Id = dns.Id()
	q.RecursionDesired = true
	q.CheckingDisabled = req.CheckingDisabled
	q.Question = []dns.Question{req.Question[0]}
	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	q.SetEdns0(udpSize, do)
	return q
}

// exchange asks one upstream: UDP first, TCP when the reply is truncated.
func (f *Forwarder) exchange(ctx context.Context, u *upstream, q *dns.Msg) (*dns.Msg, error) {
	r, err := f.exchangeOver(ctx, "udp", u, q)
	if err != nil {
		return nil, err
	}
	if r.Truncated {
		return f.exchangeOver(ctx, "tcp", u, q)
	}
	return r, nil
}

func (f *Forwarder) exchangeOver(ctx context.Context, proto string, u *upstream, q *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, UDPSize: udpSize}
	start := time.Now()
	r, _, err := c.ExchangeContext(ctx, q, u.addr)
	if err == nil {
		err = checkReply(q, r)
	}
	f.obs.ObserveUpstream(u.addr, proto, time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", proto, err)
	}
	return r, nil
}

// checkReply rejects a reply that does not answer our question: ids are
// matched by the client, but a reply must also echo the question.
func checkReply(q, r *dns.Msg) error {
	if !r.Response {
		return errors.New("reply is not a response")
	}
	if len(r.Question) != 1 {
		return fmt.Errorf("reply has %d questions", len(r.Question))
	}
	got, want := r.Question[0], q.Question[0]
	if got.Qtype != want.Qtype || got.Qclass != want.Qclass || !strings.EqualFold(got.Name, want.Name) {
		return fmt.Errorf("reply is for %s %s, not the question asked", got.Name, dns.TypeToString[got.Qtype])
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) ObserveUpstream(string, string, time.Duration, error) {}
func (nopObserver) ObserveCache(bool)                                    {}
func (nopObserver) ObserveProbe(string, bool)                            {}
func (nopObserver) ObserveBusy()                                         {}
