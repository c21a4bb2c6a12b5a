// Command meshctl writes and lists meshdns's machine registry in etcd:
// orgs, apps, machines, WireGuard peers and gateways, and regions. Every
// write is validated (including the rules that involve other keys, such as
// an address inside its org's network) before anything reaches etcd.
//
// See README.md for the commands, their flags and the bulk-load format.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
