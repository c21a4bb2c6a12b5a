package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestLogFormat checks --log-format: auto is console on a terminal and
// JSON elsewhere; json and console hold whatever stderr is.
func TestLogFormat(t *testing.T) {
	for _, tc := range []struct {
		format   string
		terminal bool
		wantJSON bool
	}{
		{"auto", false, true},
		{"auto", true, false},
		{"json", true, true},
		{"json", false, true},
		{"console", false, false},
		{"console", true, false},
	} {
		var buf bytes.Buffer
		log := newLoggerFor(zap.NewAtomicLevelAt(zap.InfoLevel), tc.format, &buf, tc.terminal)
		log.Info("hello", zap.String("k", "v"))
		line := strings.TrimSpace(buf.String())
		var obj map[string]any
		isJSON := json.Unmarshal([]byte(line), &obj) == nil
		if isJSON != tc.wantJSON {
			t.Errorf("--log-format %s, terminal %v: %q; want JSON: %v", tc.format, tc.terminal, line, tc.wantJSON)
			continue
		}
		if !isJSON && (!strings.Contains(line, "INFO") || !strings.Contains(line, "hello") || !strings.Contains(line, `"k": "v"`)) {
			t.Errorf("--log-format %s, terminal %v: console line %q lacks level, message or field", tc.format, tc.terminal, line)
		}
		// Colour codes only for a terminal: a file must not get escapes.
		if strings.Contains(line, "\x1b[") != (tc.terminal && !isJSON) {
			t.Errorf("--log-format %s, terminal %v: colour escapes %v in %q", tc.format, tc.terminal, !tc.terminal, line)
		}
	}
	if o, err := parseOptions(nil); err != nil || o.logFormat != "auto" {
		t.Errorf("default --log-format: %q, %v; want auto", o.logFormat, err)
	}
}

// TestStatusSettingsFollowTheStartupLog checks the status page's settings
// are the startup log's fields, secrets-free as that is.
func TestStatusSettingsFollowTheStartupLog(t *testing.T) {
	o, err := parseOptions([]string{"--log-format", "json", "--ttl", "9s"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range statusSettings(o, []string{"http://a:2379", "http://b:2379"}) {
		got[s.Name] = s.Value
	}
	for k, want := range map[string]string{"log_format": "json", "ttl": "9s", "etcd_endpoints": "http://a:2379, http://b:2379", "upstream": "(none)"} {
		if got[k] != want {
			t.Errorf("setting %s = %q, want %q (all: %v)", k, got[k], want, got)
		}
	}
}
