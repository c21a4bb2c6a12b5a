package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUsageErrors checks command lines that cannot be understood: they
// exit 2 with the error on the first line of stderr, followed by the usage
// of the command, and never reach etcd (none runs here).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args      []string
		want      string // in the first line
		wantUsage string // in the rest
	}{
		{[]string{"orgs"}, `unknown command "orgs" for "meshctl"`, "Available Commands"},
		{[]string{"org", "ls"}, `unknown command "ls" for "meshctl org"`, "meshctl org [command]"},
		{[]string{"org", "put", "acme"}, `required flag(s) "network" not set`, "meshctl org put NAME --network PREFIX"},
		{[]string{"org", "put", "--network", "fdaa:0:18::/48"}, "meshctl org put takes NAME, got 0 argument(s)", "--network"},
		{[]string{"machine", "state", "abc", "--org", "acme", "--app", "web"}, "meshctl machine state takes ID STATE, got 1 argument(s)", "--app"},
		{[]string{"machine", "put", "abc", "--org", "acme"}, `required flag(s) "app", "ip", "region" not set`, "--skip-registration"},
		{[]string{"org", "put", "acme", "--netwrok", "fdaa:0:18::/48"}, "unknown flag: --netwrok", "--network"},
		{[]string{"org", "list", "-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table or json`, "--output"},
		{[]string{"region", "put", "ams", "--lat", "north", "--lon", "1"}, `invalid argument "north" for "--lat" flag`, "--lon"},
		{[]string{"machine", "put", "abc", "--ttl", "soon"}, `invalid argument "soon" for "--ttl" flag`, "--ttl"},
		{[]string{"--dial-timeout", "x", "org", "list"}, `invalid argument "x" for "--dial-timeout" flag`, "Usage:"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			first, rest, _ := strings.Cut(errOut.String(), "\n")
			if !strings.HasPrefix(first, "meshctl: ") || !strings.Contains(first, tt.want) {
				t.Errorf("first line of stderr %q, want \"meshctl: ...%s...\"", first, tt.want)
			}
			if !strings.Contains(rest, "Usage:") || !strings.Contains(rest, tt.wantUsage) {
				t.Errorf("stderr after the error:\n%s\nwant the usage, mentioning %q", rest, tt.wantUsage)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

// TestHelp checks that asking for help, or naming only a noun, prints help
// on stdout and succeeds.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"machine"}, {"machine", "put", "--help"}, {"help", "load"}} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("meshctl %s: exit %d, stderr %q, stdout %q; want help on stdout", strings.Join(args, " "), code, errOut.String(), out.String())
		}
	}
}
