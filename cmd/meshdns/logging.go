package main

import (
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// newLogger logs JSON (one object a line, for log collectors) unless
// stderr is a terminal, where a person reads it, or format (--log-format)
// says otherwise. The level is atomic so SIGHUP can change it.
func newLogger(level zap.AtomicLevel, format string, stderr io.Writer) *zap.Logger {
	return newLoggerFor(level, format, stderr, isTerminal(stderr))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLoggerFor is newLogger with the terminal test done (tests pass it).
func newLoggerFor(level zap.AtomicLevel, format string, stderr io.Writer, terminal bool) *zap.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	// "5s", not 5: durations in the startup settings must read as written.
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if format == "console" || format != "json" && terminal {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		if terminal {
			encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), level))
}

// parseLevel parses a level that validate already accepted.
func parseLevel(s string) zapcore.Level {
	l, _ := zapcore.ParseLevel(s)
	return l
}

// logSettings logs the effective configuration. It holds no secrets: the
// etcd password comes from the environment and is never in options.
func logSettings(log *zap.Logger, msg string, o *options, endpoints []string) {
	log.Info(msg,
		zap.String("config", o.config),
		zap.Strings("listen", o.listen),
		zap.String("http", o.http),
		zap.Strings("etcd_endpoints", endpoints),
		zap.String("etcd_prefix", o.etcdPrefix),
		zap.Bool("etcd_tls", o.etcdCACert != "" || o.etcdCert != ""),
		zap.String("etcd_cacert", o.etcdCACert),
		zap.String("etcd_cert", o.etcdCert),
		zap.String("etcd_user", o.etcdUser),
		zap.String("data_dir", o.dataDir),
		zap.String("region", o.region),
		zap.String("default_org", o.defaultOrg),
		zap.Duration("ttl", o.ttl),
		zap.Duration("negative_ttl", o.effectiveNegativeTTL()),
		zap.Strings("upstream", o.upstream),
		zap.Duration("forward_timeout", o.forwardTimeout),
		zap.Int("forward_cache_size", o.forwardCacheSize),
		zap.Int64("forward_cache_bytes", o.forwardCacheBytesN),
		zap.Int64("forward_cache_max_reply", o.forwardCacheMaxN),
		zap.Int("rate_limit", o.rateLimit),
		zap.Int("error_rate_limit", o.errorRateLimit),
		zap.Int("rate_limit_slip", o.rateLimitSlip),
		zap.String("answer_cache_size", o.answerCacheSize),
		zap.Int("max_tcp_conns", o.maxTCPConns),
		zap.Int("max_tcp_conns_per_prefix", o.maxTCPConnsPerPfx),
		zap.Int("query_log_sample", o.queryLogSample),
		zap.Duration("reconcile_interval", o.reconcileInterval),
		zap.Duration("local_copy_interval", o.localCopyInterval),
		zap.Int("load_rate", o.loadRate),
		zap.Duration("load_jitter", o.loadJitter),
		zap.Bool("demo", o.demo),
		zap.String("log_level", o.logLevel),
		zap.String("log_format", o.logFormat),
	)
}
