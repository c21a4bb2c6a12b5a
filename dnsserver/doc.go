// Package dnsserver owns meshdns's wire: the UDP and TCP listeners, working
// out who is asking from each packet, EDNS(0), truncation to the client's
// size, and turning zones' answers into replies. It reads registry
// snapshots with one atomic load per query and never waits on etcd.
package dnsserver
