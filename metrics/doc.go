// Package metrics is meshdns's window for operators: Prometheus metrics
// about queries, forwarding and the registry, and the HTTP endpoint that
// serves them with /healthz, /readyz and the operator's status page at /
// (status.go; JSON with ?format=json).
//
// Every label has a fixed, small set of values (query types outside a
// known set count as "other"), so no query can add a series. Values that
// are cheap to read at scrape time (revision, syncer counters, snapshot
// sizes) are read then rather than pushed from the hot paths; the sizes
// are counted once per snapshot, not once per scrape.
package metrics
