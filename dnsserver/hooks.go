package dnsserver

import (
	"context"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Forwarder resolves names outside the .internal and .flycast zones for
// askers that belong to an org, org being the asker's org name. It returns
// the upstream's reply for req (with req's id and question), or an error
// when every upstream failed or org may not have more questions waiting;
// the server then answers SERVFAIL. Nothing one org asks may change what
// another is answered: its cache, its share of the upstreams and what it
// learns of them are the org's own.
type Forwarder interface {
	Forward(ctx context.Context, org string, req *dns.Msg) (*dns.Msg, error)
}

// QueryInfo describes one answered query, for metrics and query logs.
type QueryInfo struct {
	Name      string // the question name as asked
	Qtype     uint16
	Rcode     int
	Transport Transport
	Src       netip.Addr
	Org       string // the asker's org, "" if none
	Duration  time.Duration
	// Forwarded is set when the answer came from an upstream resolver.
	Forwarded bool
	// Cached is set when the reply came from the server's answer cache.
	Cached bool
	// Size is the reply's length in bytes; Truncated is its TC bit.
	Size      int
	Truncated bool
	// Worker numbers the worker (a UDP reader, or a TCP worker) that
	// answered from its cache (1, 2, ...), so an Observer can keep counts
	// per reader instead of sharing them; 0 for every other answer.
	Worker int
	// FailOpen is set when the answer holds every started machine of a
	// name because none of them is healthy (SPEC §5).
	FailOpen bool
	// ListCut is set when the answer is a TXT list (_instances, vms.<app>,
	// ...) cut at zones.MaxListText bytes after its last whole entry.
	ListCut bool
}

// Observer is told about every query the server answers. It is called on
// the query path and must be quick and safe for concurrent use.
type Observer interface {
	ObserveQuery(QueryInfo)
}
