//go:build !windows

package main

import (
	"syscall"

	"go.uber.org/zap"
)

// openFilesHeadroom is what meshdns holds open besides TCP connections:
// UDP sockets, listeners, etcd and HTTP connections, the embedded etcd's
// files.
const openFilesHeadroom = 1024

// raiseOpenFiles sets the soft open-files limit to the hard one (Go's
// runtime does so at start too; here it is explicit), and warns when that
// is still too low for --max-tcp-conns: past it, accepting a connection
// fails for every tenant alike.
func raiseOpenFiles(maxTCPConns int, log *zap.Logger) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			r = want
		}
	}
	cur := uint64(r.Cur) // int64 on FreeBSD
	if need := uint64(maxTCPConns) + openFilesHeadroom; cur < need {
		log.Warn("the open-files limit is too low for --max-tcp-conns: raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-tcp-conns",
			zap.Uint64("limit", cur), zap.Uint64("want", need), zap.Int("max_tcp_conns", maxTCPConns))
	}
}
