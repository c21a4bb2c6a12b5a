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

// logSettings logs the effective configuration, every setting of
// settingTable in its order. It holds no secrets: the etcd password comes
// from the environment and is never in options.
func logSettings(log *zap.Logger, msg string, o *options, endpoints []string) {
	var fields []zap.Field
	for _, s := range settingTable {
		fields = append(fields, s.logFields(o, endpoints)...)
	}
	log.Info(msg, fields...)
}
