// Package forward resolves names outside meshdns's own zones by asking
// upstream resolvers, for askers that belong to an org (dnsserver never
// forwards for anyone else, so meshdns is no open resolver).
//
// A Forwarder tries its upstreams in order over UDP, retries over TCP when
// a reply is truncated, and gives way to the next upstream when one fails
// or runs out of its share of the time. Replies are cached within their
// TTLs (RFC 2308 for negative answers), in a cache of bounded size, and
// served with their TTLs counted down. Identical questions asked at the
// same moment share one upstream query.
package forward
