package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// parseOptions reads the command line and the --config file as at start,
// for a reload.
func parseOptions(args []string) (*options, error) {
	var got *options
	cmd := newRootCmd(io.Discard, io.Discard, func(o *options) error { got = o; return nil })
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return nil, err
	}
	return got, nil
}

// reloadOnSIGHUP re-reads the configuration on every SIGHUP until ctx
// ends. A file that does not parse or validate changes nothing.
func reloadOnSIGHUP(ctx context.Context, args []string, r *runtimeSettings, endpoints []string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload(args, r, endpoints)
		}
	}
}

func reload(args []string, r *runtimeSettings, endpoints []string) {
	r.mu.Lock()
	old := r.current
	r.mu.Unlock()
	o, err := parseOptions(args)
	if err != nil {
		r.log.Error("configuration not reloaded; keeping the current settings",
			zap.String("file", old.config), zap.Error(err))
		return
	}
	if changed := restartOnly(old, o); len(changed) > 0 {
		r.log.Warn("some changed settings apply only after a restart; running with the old values of those",
			zap.String("file", o.config), zap.Strings("settings", changed))
		keepRestartOnly(o, old)
	}
	if err := r.apply(o); err != nil {
		r.log.Error("configuration not reloaded; keeping the current settings",
			zap.String("file", o.config), zap.Error(err))
		return
	}
	logSettings(r.log, "configuration reloaded", o, endpoints)
}
