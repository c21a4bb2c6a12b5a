// Package netns holds end-to-end tests that run meshdns the way it runs on
// a host: listening on [::]:53, with fdaa::3 and each org's <network>::3 on
// the loopback device, asked by machines whose source addresses place them
// in an org, and by WireGuard clients through a userspace WireGuard gateway.
//
// Every test builds its own network namespaces (ip netns) joined by veth
// pairs, so no packet ever leaves them; the namespaces, the processes in
// them and their files are removed when the test ends, also when it fails.
// The tests need root and ip(8) and dig(1); without root they are skipped,
// except under CI=true, where they must run.
package netns
