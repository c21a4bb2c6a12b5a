package main

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshdns/meshdns/metrics"
)

// statusSettings lists the settings in force for the status page: the
// same fields, in the same order, as the "meshdns starting" log line
// (logSettings), so the two never disagree. They hold no secrets.
func statusSettings(o *options, endpoints []string) []metrics.Setting {
	core, logs := observer.New(zapcore.InfoLevel)
	logSettings(zap.New(core), "settings", o, endpoints)
	var out []metrics.Setting
	for _, e := range logs.All() {
		for _, f := range e.Context {
			enc := zapcore.NewMapObjectEncoder()
			f.AddTo(enc)
			out = append(out, metrics.Setting{Name: f.Key, Value: settingText(enc.Fields[f.Key])})
		}
	}
	return out
}

func settingText(v any) string {
	switch v := v.(type) {
	case []any:
		if len(v) == 0 {
			return "(none)"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ", ")
	case string:
		if v == "" {
			return "(none)"
		}
		return v
	}
	return fmt.Sprint(v)
}
