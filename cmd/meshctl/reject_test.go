package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRejectedWrites checks that every kind of invalid write fails with one
// line on stderr naming the value and the rule, and writes nothing: no key
// changes, the etcd revision does not move and no lease is left behind.
func TestRejectedWrites(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, nil) // own etcd: the revision and lease checks need it to be quiet
	r.seed()
	machine := func(extra ...string) []string {
		return append([]string{"machine", "put", "abc123", "--org", "acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18:a7b:1::9"}, extra...)
	}
	loadMachine := func(fields string) string {
		return `{"machines":[{"org":"acme","app":"web","id":"abc123","region":"ams","ip":"fdaa:0:18::9","state":"started"` + fields + `}]}`
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		file  string // written to a file whose path replaces the argument "FILE"
		want  []string
	}{
		// Names.
		{name: "org name ends with -", args: []string{"org", "put", "acme-", "--network", "fdaa:0:20::/48"}, want: []string{`org "acme-"`, "must not start or end with '-'"}},
		{name: "org name too long", args: []string{"org", "put", strings.Repeat("a", 64), "--network", "fdaa:0:20::/48"}, want: []string{strings.Repeat("a", 64), "1 to 63 bytes"}},
		{name: "uppercase app", args: []string{"app", "put", "Web", "--org", "acme"}, want: []string{`app "Web"`, "only lowercase"}},
		{name: "uppercase org of a machine", args: []string{"machine", "put", "abc123", "--org", "Acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18::9"}, want: []string{`org "Acme"`, "only lowercase"}},
		{name: "peer name with a dot", args: []string{"peer", "put", "my.laptop", "--org", "acme", "--ip", "fdaa:0:18::9"}, want: []string{`peer "my.laptop"`}},
		{name: "machine id not hex", args: []string{"machine", "put", "xyz", "--org", "acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18::9"}, want: []string{`machine id "xyz"`, "lowercase hex"}},
		{name: "machine id uppercase hex", args: []string{"machine", "put", "3D8D", "--org", "acme", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18::9"}, want: []string{`machine id "3D8D"`, "lowercase hex"}},
		{name: "rm with an uppercase id", args: []string{"machine", "rm", "3D8D", "--org", "acme", "--app", "web"}, want: []string{`machine id "3D8D"`}},
		{name: "process group uppercase", args: machine("--process-group", "Worker"), want: []string{`process_group "Worker"`}},

		// States and regions.
		{name: "unknown state", args: machine("--state", "running"), want: []string{`state "running"`, "must be one of"}},
		{name: "unknown check status", args: []string{"machine", "check", "3d8d9e0b2ee489", "http", "down", "--org", "acme", "--app", "web"}, want: []string{`check http`, `status "down"`, "passing warning critical"}},
		{name: "bad check name", args: []string{"machine", "check", "3d8d9e0b2ee489", "HTTP", "passing", "--org", "acme", "--app", "web"}, want: []string{`check name "HTTP"`, "lowercase"}},
		{name: "check of a missing machine", args: []string{"machine", "check", "0ff", "http", "passing", "--org", "acme", "--app", "web"}, want: []string{"machines/acme/web/0ff", "not found"}},
		{name: "service without a port", args: machine("--service", "http/tcp"), want: []string{`--service "http/tcp"`, "NAME/PROTOCOL/PORT"}},
		{name: "service port not a number", args: machine("--service", "http/tcp/x"), want: []string{`port "x"`}},
		{name: "service port out of range", args: machine("--service", "http/tcp/70000"), want: []string{"http/tcp", "port 70000", "1 and 65535"}},
		{name: "service protocol", args: machine("--service", "http/sctp/80"), want: []string{`"sctp"`, "tcp or udp"}},
		{name: "service name of digits", args: machine("--service", "8080/tcp/80"), want: []string{`service name "8080"`, "letter"}},
		{name: "service twice", args: machine("--service", "http/tcp/80", "--service", "http/tcp/81"), want: []string{"http/tcp", "declared twice"}},
		{name: "unknown state change", args: []string{"machine", "state", "3d8d9e0b2ee489", "running", "--org", "acme", "--app", "web"}, want: []string{`state "running"`, "must be one of"}},
		{name: "reserved region vms", args: machine("--region", "vms"), want: []string{`region "vms"`, "reserved"}},
		{name: "reserved region put", args: []string{"region", "put", "top", "--lat", "1", "--lon", "1"}, want: []string{`region "top"`, "reserved"}},
		{name: "region of four letters", args: machine("--region", "amst"), want: []string{`region "amst"`, "three lowercase letters"}},
		{name: "latitude out of range", args: []string{"region", "put", "abc", "--lat", "91", "--lon", "0"}, want: []string{"lat 91", "between -90 and 90"}},

		// Addresses and networks.
		{name: "ip outside the org", args: machine("--ip", "fdaa:0:19::1"), want: []string{"fdaa:0:19::1", "outside the org's network fdaa:0:18::/48"}},
		{name: "ip outside the org with --ttl", args: machine("--ip", "fdaa:0:19::1", "--ttl", "30s"), want: []string{"fdaa:0:19::1", "outside the org's network"}},
		{name: "ip outside the mesh", args: machine("--ip", "2001:db8::1"), want: []string{"2001:db8::1", "fdaa::/16"}},
		{name: "ip not an address", args: machine("--ip", "fdaa::zz"), want: []string{`ip "fdaa::zz"`, "not an IPv6 address"}},
		{name: "ipv4 address", args: machine("--ip", "10.0.0.1"), want: []string{`"10.0.0.1"`, "IPv6"}},
		{name: "peer ip outside the org", args: []string{"peer", "put", "ci", "--org", "acme", "--ip", "fdaa:0:19::2"}, want: []string{"fdaa:0:19::2", "outside"}},
		{name: "flycast outside the org", args: []string{"app", "put", "api", "--org", "acme", "--flycast", "fdaa:0:19::5"}, want: []string{"fdaa:0:19::5", "outside"}},
		{name: "network outside fdaa::/16", args: []string{"org", "put", "initech", "--network", "fd00:0:20::/48"}, want: []string{"fd00:0:20::/48", "fdaa::/16"}},
		{name: "network not /48", args: []string{"org", "put", "initech", "--network", "fdaa:0:20::/64"}, want: []string{"fdaa:0:20::/64", "/48"}},
		{name: "network with host bits", args: []string{"org", "put", "initech", "--network", "fdaa:0:20::1/48"}, want: []string{"fdaa:0:20::1/48", "host bits"}},
		{name: "network not a prefix", args: []string{"org", "put", "initech", "--network", "fdaa:0:20::"}, want: []string{`network "fdaa:0:20::"`, "not an IPv6 prefix"}},
		{name: "network held by another org", args: []string{"org", "put", "initech", "--network", "fdaa:0:18::/48"}, want: []string{"fdaa:0:18::/48", "already belongs to org acme"}},
		{name: "app of an unregistered org", args: []string{"app", "put", "web", "--org", "initech"}, want: []string{`org "initech"`, "not registered"}},
		{name: "machine of an unregistered org", args: []string{"machine", "put", "abc123", "--org", "initech", "--app", "web", "--region", "ams", "--ip", "fdaa:0:18::9"}, want: []string{`org "initech"`, "not registered"}},

		// Metadata.
		{name: "metadata key uppercase", args: machine("--metadata", "Role=primary"), want: []string{`metadata key "Role"`, "only lowercase"}},
		{name: "metadata value empty", args: machine("--metadata", "role="), want: []string{`metadata value of role ""`}},
		{name: "metadata value with a space", args: machine("--metadata", "role=primary db"), want: []string{`"primary db"`}},
		{name: "metadata without =", args: machine("--metadata", "role"), want: []string{`metadata "role"`, "key=value"}},
		{name: "metadata key twice", args: machine("--metadata", "role=a", "--metadata", "role=b"), want: []string{`metadata key "role"`, "twice"}},

		// Gateways and keys.
		{name: "gateway endpoint without port", args: []string{"gateway", "put", "iad", "--endpoint", "203.0.113.8", "--public-key", gatewayKey}, want: []string{`endpoint "203.0.113.8"`, "address:port"}},
		{name: "gateway endpoint a hostname", args: []string{"gateway", "put", "iad", "--endpoint", "gw.example.com:51820", "--public-key", gatewayKey}, want: []string{`endpoint "gw.example.com:51820"`}},
		{name: "gateway key not base64", args: []string{"gateway", "put", "iad", "--endpoint", "203.0.113.8:51820", "--public-key", "not-a-key"}, want: []string{`public_key "not-a-key"`, "WireGuard key"}},
		{name: "peer key of the wrong length", args: []string{"peer", "put", "ci", "--org", "acme", "--ip", "fdaa:0:18::9", "--public-key", "AAAA"}, want: []string{`public_key "AAAA"`, "32 bytes"}},

		// Leases.
		{name: "ttl of a fraction of a second", args: machine("--ttl", "1500ms"), want: []string{"--ttl 1.5s", "whole seconds"}},

		// Removing and changing what is not there.
		{name: "rm of a missing machine", args: []string{"machine", "rm", "abc123", "--org", "acme", "--app", "web"}, want: []string{"machines/acme/web/abc123", "not found"}},
		{name: "rm of a missing org", args: []string{"org", "rm", "initech"}, want: []string{`org "initech"`, "not found"}},
		{name: "state of a missing machine", args: []string{"machine", "state", "abc123", "stopped", "--org", "acme", "--app", "web"}, want: []string{"machines/acme/web/abc123", "not found"}},

		// Bulk load.
		{name: "load: unknown top-level field", args: []string{"load", "-"}, stdin: `{"orgs":[],"machine":[]}`, want: []string{`unknown field "machine"; a document has only orgs`}},
		{name: "load: unknown element field", args: []string{"load", "-"}, stdin: loadMachine(`,"stat":"stopped"`), want: []string{`machines[0]: unknown field "stat"`}},
		{name: "load: bad JSON", args: []string{"load", "FILE"}, file: `{"orgs": [`, want: []string{"doc.json", "invalid JSON"}},
		{name: "load: syntax error", args: []string{"load", "-"}, stdin: `{"orgs": [}`, want: []string{"invalid JSON at byte 11"}},
		{name: "load: data after the document", args: []string{"load", "-"}, stdin: `{} {}`, want: []string{"unexpected data after the document"}},
		{name: "load: null document", args: []string{"load", "-"}, stdin: `null`, want: []string{"document is null"}},
		{name: "load: null element", args: []string{"load", "-"}, stdin: `{"orgs":[null]}`, want: []string{"orgs[0]: null"}},
		{name: "load: wrong type", args: []string{"load", "-"}, stdin: `{"regions":[{"code":"abc","lat":"north","lon":0}]}`, want: []string{`regions[0]: field "lat": got a JSON string, want a number`}},
		{name: "load: address as a number", args: []string{"load", "-"}, stdin: loadMachine(`,"ip":5`), want: []string{`machines[0]: field "ip": got a JSON number, want a string`}},
		{name: "load: element not an object", args: []string{"load", "-"}, stdin: `{"orgs":[["acme"]]}`, want: []string{"orgs[0]: got a JSON array, want an object"}},
		{name: "load: section not an array", args: []string{"load", "-"}, stdin: `{"orgs":{"name":"acme"}}`, want: []string{`field "orgs": got a JSON object, want an array`}},
		{name: "load: invalid value", args: []string{"load", "-"}, stdin: loadMachine(`,"process_group":"Web"`), want: []string{"machines[0]", `process_group "Web"`}},
		{name: "load: ip outside the org in etcd", args: []string{"load", "-"},
			stdin: `{"apps":[{"org":"acme","name":"api"}],"machines":[{"org":"acme","app":"web","id":"abc123","region":"ams","ip":"fdaa:0:19::9","state":"started"}]}`,
			want:  []string{"fdaa:0:19::9", "outside the org's network fdaa:0:18::/48"}},
		{name: "load: ip outside an org of the same file", args: []string{"load", "-"},
			stdin: `{"orgs":[{"name":"initech","network":"fdaa:0:20::/48"}],"machines":[{"org":"initech","app":"web","id":"abc123","region":"ams","ip":"fdaa:0:21::9","state":"started"}]}`,
			want:  []string{"fdaa:0:21::9", "outside the org's network fdaa:0:20::/48"}},
		{name: "load: org not registered", args: []string{"load", "-"}, stdin: `{"peers":[{"org":"initech","name":"ci","ip":"fdaa:0:20::9"}]}`, want: []string{`org "initech"`, "not registered"}},
		{name: "load: network held by an org in etcd", args: []string{"load", "-"}, stdin: `{"orgs":[{"name":"initech","network":"fdaa:0:19::/48"}]}`, want: []string{"fdaa:0:19::/48", "already belongs to org globex"}},
		{name: "load: one network for two orgs", args: []string{"load", "-"},
			stdin: `{"orgs":[{"name":"initech","network":"fdaa:0:20::/48"},{"name":"hooli","network":"fdaa:0:20::/48"}]}`,
			want:  []string{"fdaa:0:20::/48", "already belongs to org initech"}},
		{name: "load: the same machine twice", args: []string{"load", "-"},
			stdin: `{"machines":[{"org":"acme","app":"web","id":"abc123","region":"ams","ip":"fdaa:0:18::9","state":"started"},{"org":"acme","app":"web","id":"abc123","region":"iad","ip":"fdaa:0:18::9","state":"started"}]}`,
			want:  []string{"machines[1]", "machines/acme/web/abc123", "already given in machines[0]"}},
		{name: "load: missing file", args: []string{"load", "/nonexistent/doc.json"}, want: []string{"/nonexistent/doc.json", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "doc.json")
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = replaceArg(args, "FILE", path)
			}
			before, rev, leases := r.dump(), r.revision(), r.leases()
			res := r.runStdin(tt.stdin, args...)
			checkOneLineError(t, res, exitFailure, tt.want...)
			if after := r.dump(); !maps.Equal(after, before) {
				t.Errorf("registry changed:\nbefore %v\nafter  %v", before, after)
			}
			if got := r.revision(); got != rev {
				t.Errorf("etcd revision moved from %d to %d: something was written", rev, got)
			}
			if got := r.leases(); got != leases {
				t.Errorf("%d leases after the command, want %d as before", got, leases)
			}
		})
	}
}

// checkOneLineError checks that a command failed with the given exit code,
// printed nothing on stdout and exactly one line "meshctl: ..." on stderr
// containing each of want.
func checkOneLineError(t *testing.T, res result, code int, want ...string) {
	t.Helper()
	if res.code != code {
		t.Errorf("exit code %d, want %d", res.code, code)
	}
	if res.stdout != "" {
		t.Errorf("stdout %q, want nothing", res.stdout)
	}
	if !strings.HasPrefix(res.stderr, "meshctl: ") || !strings.HasSuffix(res.stderr, "\n") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want exactly one line starting with %q", res.stderr, "meshctl: ")
	}
	for _, w := range want {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr %q does not mention %q", res.stderr, w)
		}
	}
}

func replaceArg(args []string, old, new string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == old {
			a = new
		}
		out[i] = a
	}
	return out
}

// revision returns etcd's current revision, which moves with every write.
func (r *testRegistry) revision() int64 {
	r.t.Helper()
	resp, err := r.cli.Get(context.Background(), r.prefix, clientv3.WithCountOnly())
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.Header.Revision
}

// leases returns how many leases etcd holds.
func (r *testRegistry) leases() int {
	r.t.Helper()
	resp, err := r.cli.Leases(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return len(resp.Leases)
}
