// Package registry owns meshdns's view of the machine registry kept in etcd:
// the key schema and JSON values (docs/reference.md, "The registry in etcd";
// registry/README.md), their validation, the writer API
// used by meshctl and other control-plane programs, and the read side that
// loads the registry at one revision, follows it with a watch, and publishes
// immutable Snapshots that the DNS query path reads without locks.
//
// Nothing outside this package talks to etcd's client directly.
package registry
