package main

import "go.uber.org/zap"

// raiseOpenFiles does nothing on Windows: there is no open-files rlimit;
// sockets are bounded by --max-tcp-conns and the system's own limits.
func raiseOpenFiles(maxTCPConns int, log *zap.Logger) {}
