// Package zones answers questions about the internal. and flycast. zones,
// and the reverse names of fdaa::/16 (a.a.d.f.ip6.arpa.), from an
// immutable registry Snapshot: it owns the name grammar, the TXT formats,
// the built-in region table and the nearest-first ordering of AAAA
// answers (docs/reference.md, "Names and answers").
//
// It is pure: (snapshot, asker, question) → (rcode, answer, authority). It
// opens no sockets, reads no clock, logs nothing and keeps no mutable global
// state, so the DNS server may call it from any number of goroutines and
// cache what it returns. The wire (EDNS, truncation, opcodes, identifying
// the asker) belongs to dnsserver. README.md describes the grammar, the
// formats and the decisions behind them.
package zones
