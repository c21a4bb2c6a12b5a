// Package forward resolves names outside meshdns's own zones by asking
// upstream resolvers, for askers that belong to an org (dnsserver never
// forwards for anyone else, so meshdns is no open resolver).
//
// A Forwarder tries its live upstreams in order over UDP, retries over TCP
// when a reply is truncated, and gives way to the next upstream when one
// fails or runs out of its share of the time. Whether an upstream is live
// is judged by probes of its own (the root's NS), never by how askers'
// questions fare: any asker can pick names that are never answered.
//
// Orgs are kept apart (hostile tenants, issue #10): each org has its own
// part of the cache (no org learns what another asked, or when, or in
// which letter case), every reply carries the asker's own case, identical
// questions share one upstream query only within an org, and each org has
// a bounded share of the questions waiting on the upstreams. Replies are
// cached within their TTLs (RFC 2308 for negative answers), packed, in a
// cache bounded in bytes and entries where a full cache evicts from the
// org holding the most, and served with their TTLs counted down.
package forward
