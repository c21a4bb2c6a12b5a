package registry

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// wgKey is a valid WireGuard key: 32 bytes in standard base64.
const wgKey = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="

// checkErr fails unless err is nil when want is "", or else names every
// part of want (comma-separated substrings: typically field, value, rule).
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Errorf("no error, want one mentioning %q", want)
		return
	}
	for part := range strings.SplitSeq(want, "|") {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func TestCheckLabel(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"", `app ""|1 to 63 bytes`},
		{"a", ""},
		{"0", ""},
		{"web-1", ""},
		{"w-e-b", ""},
		{strings.Repeat("a", 63), ""},
		{strings.Repeat("a", 64), "1 to 63 bytes"},
		{"Web", `app "Web"|lowercase`},
		{"WEB", "lowercase"},
		{"my_app", `"my_app"|lowercase letters, digits and '-'`},
		{"a.b", "lowercase letters, digits and '-'"},
		{"a b", "lowercase letters, digits and '-'"},
		{"caf\u00e9", "lowercase letters, digits and '-'"},
		{"-web", `"-web"|must not start or end with '-'`},
		{"web-", "must not start or end with '-'"},
		{"-", "must not start or end with '-'"},
	} {
		t.Run(tc.in, func(t *testing.T) { checkErr(t, CheckLabel("app", tc.in), tc.err) })
	}
}

func TestCheckMachineID(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"3d8d9e0b2ee489", ""},
		{"0", ""},
		{"abcdef0123456789", ""},
		{strings.Repeat("f", 63), ""},
		{strings.Repeat("f", 64), "machine id|1 to 63 bytes"},
		{"", "machine id|1 to 63 bytes"},
		{"3D8D9E0B2EE489", `machine id "3D8D9E0B2EE489"|lowercase hex`},
		{"3d8g", "lowercase hex"},
		{"web", "lowercase hex"},
		{"0a-1", "lowercase hex"},
	} {
		t.Run(tc.in, func(t *testing.T) { checkErr(t, CheckMachineID(tc.in), tc.err) })
	}
}

func TestCheckState(t *testing.T) {
	want := []string{"created", "starting", "started", "stopping", "stopped", "suspending",
		"suspended", "replacing", "destroying", "destroyed", "failed"}
	if !reflect.DeepEqual(States, want) {
		t.Errorf("States = %v, want the SPEC §3 list %v", States, want)
	}
	for _, s := range want {
		checkErr(t, CheckState(s), "")
	}
	for _, s := range []string{"", "running", "Started", "STARTED", "started ", "destroy"} {
		checkErr(t, CheckState(s), `state "`+s+`"|must be one of`)
	}
}

func TestCheckRegionCode(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"ams", ""},
		{"iad", ""},
		{"xyz", ""},
		{"", `region ""|three lowercase letters`},
		{"am", "three lowercase letters"},
		{"amst", "three lowercase letters"},
		{"AMS", `region "AMS"|three lowercase letters`},
		{"a1s", "three lowercase letters"},
		{"a-s", "three lowercase letters"},
	} {
		t.Run(tc.in, func(t *testing.T) { checkErr(t, CheckRegionCode(tc.in), tc.err) })
	}
	// Every word of the grammar that has three letters is refused; the rest
	// already fail the length rule, which is fine as long as they fail.
	for _, w := range []string{"vms", "all", "top", "nearest", "of", "process", "vm", "global", "regions"} {
		err := CheckRegionCode(w)
		if err == nil {
			t.Errorf("region %q accepted", w)
		}
		if len(w) == 3 {
			checkErr(t, err, `region "`+w+`"|reserved word`)
		}
	}
}

func TestCheckNetwork(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"fdaa:0:18::/48", ""},
		{"fdaa:ffff:ffff::/48", ""},
		{"fdaa::/48", ""},
		{"fdaa:0:18::/64", `network "fdaa:0:18::/64"|IPv6 /48`},
		{"fdaa::/16", "IPv6 /48"},
		{"fdaa:0:18::/47", "IPv6 /48"},
		{"fdab:0:18::/48", `"fdab:0:18::/48"|inside fdaa::/16`},
		{"fd00::/48", "inside fdaa::/16"},
		{"2001:db8:1::/48", "inside fdaa::/16"},
		{"fdaa:0:18::1/48", `"fdaa:0:18::1/48"|host bits set|fdaa:0:18::/48`},
		{"fdaa:0:18:1::/48", "host bits set"},
		{"10.0.0.0/8", "IPv6 /48"},
		{"10.0.0.0/48", "IPv6 /48"}, // not even parseable as such, see below
		{"::ffff:10.0.0.0/112", "IPv6 /48"},
		{"::ffff:0:0/48", "IPv6 /48"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := netip.ParsePrefix(tc.in)
			if err != nil {
				// Not a prefix at all: JSON decoding refuses it before
				// CheckNetwork runs (see TestDecode).
				return
			}
			checkErr(t, CheckNetwork(p), tc.err)
		})
	}
	checkErr(t, CheckNetwork(netip.Prefix{}), "network|missing")
}

func TestCheckAddrIn(t *testing.T) {
	acme := netip.MustParsePrefix("fdaa:0:18::/48")
	for _, tc := range []struct {
		in  string
		net netip.Prefix
		err string
	}{
		{"fdaa:0:18:a7b:1::2", acme, ""},
		{"fdaa:0:18::", acme, ""},
		{"fdaa:0:18:ffff:ffff:ffff:ffff:ffff", acme, ""},
		{"fdaa:0:19::2", acme, "ip fdaa:0:19::2|outside the org's network fdaa:0:18::/48"},
		{"fdaa:0:17:ffff:ffff:ffff:ffff:ffff", acme, "outside the org's network"},
		{"fdaa:0:19::2", MeshRange, ""},
		{"fdab::2", MeshRange, "outside"},
		{"10.0.0.1", acme, `ip "10.0.0.1"|must be an IPv6 address`},
		{"::ffff:10.0.0.1", MeshRange, "must be an IPv6 address"},
		{"fdaa:0:18::2%eth0", acme, "must be an IPv6 address"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			checkErr(t, CheckAddrIn("ip", netip.MustParseAddr(tc.in), tc.net), tc.err)
		})
	}
	checkErr(t, CheckAddrIn("ip", netip.Addr{}, acme), "ip|must be an IPv6 address")
}

func TestCheckWireGuardKey(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{wgKey, ""},
		{"", `public_key ""|WireGuard key`},
		{"YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYQ==", "WireGuard key"}, // 31 bytes
		{"YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh", "WireGuard key"}, // 33 bytes
		{"YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE", "WireGuard key"},  // no padding
		{"-_FhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=", "WireGuard key"}, // URL alphabet
		{"not base64 at all, clearly not a key!!!!!!=", "WireGuard key"},
	} {
		t.Run(tc.in, func(t *testing.T) { checkErr(t, CheckWireGuardKey("public_key", tc.in), tc.err) })
	}
}

// TestDecode covers the JSON side of every value: what parses, what each rule
// rejects, type mismatches, and unknown fields.
func TestDecode(t *testing.T) {
	org := OrgKey("acme")
	app := AppKey("acme", "web")
	machine := MachineKey("acme", "web", "3d8d9e0b2ee489")
	peer := PeerKey("acme", "alice")
	gateway := GatewayKey("ams")
	region := RegionKey("ams")
	updated := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name string
		key  Key
		json string
		want any    // when err is ""
		err  string // substrings, '|'-separated
	}{
		// orgs/
		{"org", org, `{"network":"fdaa:0:18::/48"}`,
			&OrgValue{Name: "acme", Network: netip.MustParsePrefix("fdaa:0:18::/48")}, ""},
		{"org unknown fields ignored", org, `{"network":"fdaa:0:18::/48","owner":"bob","limits":{"apps":3},"updated_at":"2025-03-01T12:00:00Z"}`,
			&OrgValue{Name: "acme", Network: netip.MustParsePrefix("fdaa:0:18::/48"), UpdatedAt: updated}, ""},
		{"org no network", org, `{}`, nil, "network|missing"},
		{"org /64", org, `{"network":"fdaa:0:18::/64"}`, nil, "fdaa:0:18::/64|/48"},
		{"org outside fdaa::/16", org, `{"network":"fdab:0:18::/48"}`, nil, "fdab:0:18::/48|inside fdaa::/16"},
		{"org host bits", org, `{"network":"fdaa:0:18::7/48"}`, nil, "host bits"},
		{"org ipv4", org, `{"network":"10.1.0.0/16"}`, nil, "10.1.0.0/16|IPv6 /48"},
		{"org not a prefix", org, `{"network":"fdaa:0:18::"}`, nil, "not valid JSON|fdaa:0:18::"},
		{"org network is a number", org, `{"network":48}`, nil, "not valid JSON|network"},
		{"org bad updated_at", org, `{"network":"fdaa:0:18::/48","updated_at":"yesterday"}`, nil, "not valid JSON"},
		{"org broken json", org, `{"network":"fdaa:0:18::/48"`, nil, "not valid JSON"},
		{"org not an object", org, `["fdaa:0:18::/48"]`, nil, "not valid JSON"},
		{"org null", org, `null`, nil, "JSON object"},
		{"org empty", org, ``, nil, "not valid JSON"},

		// apps/
		{"app empty object", app, `{}`, &AppValue{Org: "acme", Name: "web"}, ""},
		{"app flycast", app, `{"flycast":"fdaa:0:18:0:1::5","extra":true}`,
			&AppValue{Org: "acme", Name: "web", Flycast: netip.MustParseAddr("fdaa:0:18:0:1::5")}, ""},
		{"app flycast outside mesh", app, `{"flycast":"fd00::5"}`, nil, "flycast fd00::5|outside"},
		{"app flycast ipv4", app, `{"flycast":"10.0.0.5"}`, nil, `flycast "10.0.0.5"|IPv6`},
		{"app flycast not an address", app, `{"flycast":"web"}`, nil, "not valid JSON"},
		{"app flycast a number", app, `{"flycast":5}`, nil, "not valid JSON|flycast"},
		{"app null", app, `null`, nil, "JSON object"},
		{"app string", app, `"web"`, nil, "not valid JSON"},

		// machines/
		{"machine", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","process_group":"worker","metadata":{"role":"primary"},"skip_registration":true,"updated_at":"2025-03-01T12:00:00Z"}`,
			&Machine{Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "ams", IP: netip.MustParseAddr("fdaa:0:18:a7b:1::2"),
				State: "started", ProcessGroup: "worker", Metadata: map[string]string{"role": "primary"}, SkipRegistration: true, UpdatedAt: updated}, ""},
		{"machine default process group, unknown fields", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped","cpu_kind":"shared","volumes":[1,2]}`,
			&Machine{Org: "acme", App: "web", ID: "3d8d9e0b2ee489", Region: "ams", IP: netip.MustParseAddr("fdaa:0:18:a7b:1::2"),
				State: "stopped", ProcessGroup: "app"}, ""},
		{"machine no region", machine, `{"ip":"fdaa:0:18:a7b:1::2","state":"started"}`, nil, `region ""`},
		{"machine uppercase region", machine, `{"region":"AMS","ip":"fdaa:0:18:a7b:1::2","state":"started"}`, nil, `region "AMS"|three lowercase letters`},
		{"machine reserved region", machine, `{"region":"vms","ip":"fdaa:0:18:a7b:1::2","state":"started"}`, nil, `region "vms"|reserved`},
		{"machine unknown state", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"running"}`, nil, `state "running"|must be one of`},
		{"machine no state", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2"}`, nil, `state ""`},
		{"machine no ip", machine, `{"region":"ams","state":"started"}`, nil, "ip|IPv6 address"},
		{"machine ipv4", machine, `{"region":"ams","ip":"10.0.0.2","state":"started"}`, nil, `ip "10.0.0.2"|IPv6 address`},
		{"machine ip outside mesh", machine, `{"region":"ams","ip":"2001:db8::2","state":"started"}`, nil, "ip 2001:db8::2|outside"},
		{"machine ip with zone", machine, `{"region":"ams","ip":"fdaa:0:18::2%eth0","state":"started"}`, nil, "IPv6 address"},
		{"machine bad process group", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","process_group":"Web_1"}`, nil, `process_group "Web_1"|lowercase`},
		{"machine bad metadata key", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"Role":"primary"}}`, nil, `metadata key "Role"`},
		{"machine bad metadata value", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"role":"pri mary"}}`, nil, `metadata value of role "pri mary"`},
		{"machine empty metadata value", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"role":""}}`, nil, `metadata value of role ""`},
		{"machine metadata value a number", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"replicas":3}}`, nil, "not valid JSON|metadata"},
		{"machine state a number", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":1}`, nil, "not valid JSON|state"},
		{"machine skip_registration a string", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","skip_registration":"yes"}`, nil, "not valid JSON|skip_registration"},
		{"machine ip a number", machine, `{"region":"ams","ip":42,"state":"started"}`, nil, "not valid JSON|ip"},
		{"machine null", machine, `null`, nil, "JSON object"},
		{"machine trailing garbage", machine, `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"} x`, nil, "not valid JSON"},

		// peers/
		{"peer", peer, `{"ip":"fdaa:0:18:a7b:9::2","region":"ams","public_key":"` + wgKey + `"}`,
			&Peer{Org: "acme", Name: "alice", IP: netip.MustParseAddr("fdaa:0:18:a7b:9::2"), Region: "ams", PublicKey: wgKey}, ""},
		{"peer minimal", peer, `{"ip":"fdaa:0:18:a7b:9::2"}`,
			&Peer{Org: "acme", Name: "alice", IP: netip.MustParseAddr("fdaa:0:18:a7b:9::2")}, ""},
		{"peer no ip", peer, `{"region":"ams"}`, nil, "ip|IPv6 address"},
		{"peer bad region", peer, `{"ip":"fdaa:0:18:a7b:9::2","region":"all"}`, nil, `region "all"|reserved`},
		{"peer bad key", peer, `{"ip":"fdaa:0:18:a7b:9::2","public_key":"abc"}`, nil, `public_key "abc"|WireGuard key`},
		{"peer key a number", peer, `{"ip":"fdaa:0:18:a7b:9::2","public_key":7}`, nil, "not valid JSON|public_key"},

		// gateways/
		{"gateway", gateway, `{"endpoint":"203.0.113.7:51820","public_key":"` + wgKey + `","site":"x"}`,
			&Gateway{Region: "ams", Endpoint: "203.0.113.7:51820", PublicKey: wgKey}, ""},
		{"gateway ipv6 endpoint", gateway, `{"endpoint":"[2001:db8::7]:51820","public_key":"` + wgKey + `"}`,
			&Gateway{Region: "ams", Endpoint: "[2001:db8::7]:51820", PublicKey: wgKey}, ""},
		{"gateway endpoint without port", gateway, `{"endpoint":"203.0.113.7","public_key":"` + wgKey + `"}`, nil, `endpoint "203.0.113.7"|address:port`},
		{"gateway endpoint hostname", gateway, `{"endpoint":"gw.example.com:51820","public_key":"` + wgKey + `"}`, nil, "endpoint|address:port"},
		{"gateway no endpoint", gateway, `{"public_key":"` + wgKey + `"}`, nil, `endpoint ""`},
		{"gateway no key", gateway, `{"endpoint":"203.0.113.7:51820"}`, nil, `public_key ""|WireGuard key`},
		{"gateway bad key", gateway, `{"endpoint":"203.0.113.7:51820","public_key":"xyz"}`, nil, `public_key "xyz"`},

		// regions/
		{"region", region, `{"name":"Amsterdam","lat":52.31,"lon":4.77,"pop":"yes"}`,
			&Region{Code: "ams", Name: "Amsterdam", Lat: 52.31, Lon: 4.77}, ""},
		{"region bounds", region, `{"lat":90,"lon":180}`, &Region{Code: "ams", Lat: 90, Lon: 180}, ""},
		{"region negative bounds", region, `{"lat":-90,"lon":-180}`, &Region{Code: "ams", Lat: -90, Lon: -180}, ""},
		{"region lat too big", region, `{"lat":90.0001,"lon":0}`, nil, "lat 90.0001|between -90 and 90"},
		{"region lat too small", region, `{"lat":-91,"lon":0}`, nil, "lat -91|between -90 and 90"},
		{"region lon too big", region, `{"lat":0,"lon":180.5}`, nil, "lon 180.5|between -180 and 180"},
		{"region lon too small", region, `{"lat":0,"lon":-181}`, nil, "lon -181|between -180 and 180"},
		{"region lat a string", region, `{"lat":"52.3","lon":4.7}`, nil, "not valid JSON|lat"},
		{"region null", region, `null`, nil, "JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode(tc.key, []byte(tc.json))
			checkErr(t, err, tc.err)
			if tc.err != "" {
				if v != nil {
					t.Errorf("Decode returned %#v along with the error", v)
				}
				return
			}
			if !reflect.DeepEqual(v, tc.want) {
				t.Errorf("Decode =\n %#v\nwant\n %#v", v, tc.want)
			}
		})
	}
}

func TestDecodeUnknownKind(t *testing.T) {
	for _, k := range []Key{{}, {Kind: 7, Name: "x"}} {
		if v, err := Decode(k, []byte(`{}`)); err == nil {
			t.Errorf("Decode(%v) = %v, want an error", k.Kind, v)
		}
	}
}

// TestValidateNames checks that the value types refuse bad names too: the
// writer API builds keys from them.
func TestValidateNames(t *testing.T) {
	ip := netip.MustParseAddr("fdaa:0:18::2")
	for _, tc := range []struct {
		name string
		v    interface{ Validate() error }
		err  string
	}{
		{"org name", &OrgValue{Name: "Acme", Network: netip.MustParsePrefix("fdaa:0:18::/48")}, `org "Acme"`},
		{"app org", &AppValue{Org: "", Name: "web"}, `org ""`},
		{"app name", &AppValue{Org: "acme", Name: "web_1"}, `app "web_1"`},
		{"machine id", &Machine{Org: "acme", App: "web", ID: "xyz", Region: "ams", IP: ip, State: "started", ProcessGroup: "app"}, `machine id "xyz"`},
		{"machine app", &Machine{Org: "acme", App: "-web", ID: "0a", Region: "ams", IP: ip, State: "started", ProcessGroup: "app"}, `app "-web"`},
		{"peer name", &Peer{Org: "acme", Name: "Alice", IP: ip}, `peer "Alice"`},
		{"gateway region", &Gateway{Region: "Ams", Endpoint: "1.2.3.4:5", PublicKey: wgKey}, `region "Ams"`},
		{"region code", &Region{Code: "top"}, `region "top"|reserved`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, tc.v.Validate(), tc.err) })
	}
}

// TestDecodeChecksAndServices: checks and services in machine values are
// validated like every other field (SPEC §5), with an error naming the
// field, the value and the rule.
func TestDecodeChecksAndServices(t *testing.T) {
	k := MachineKey("acme", "web", "3d8d9e0b2ee489")
	const base = `{"region":"ams","ip":"fdaa:0:18::2","state":"started"`
	for _, tc := range []struct {
		name, extra, err string
	}{
		{"no checks", ``, ""},
		{"checks ok", `,"checks":{"http":"passing","pg_1":"critical","disk-io":"warning"}`, ""},
		{"empty checks", `,"checks":{}`, ""},
		{"check name 63", `,"checks":{"` + strings.Repeat("a", 63) + `":"passing"}`, ""},
		{"check name 64", `,"checks":{"` + strings.Repeat("a", 64) + `":"passing"}`, "check name|1 to 63 bytes"},
		{"check name empty", `,"checks":{"":"passing"}`, `check name ""|1 to 63 bytes`},
		{"check name upper", `,"checks":{"HTTP":"passing"}`, `check name "HTTP"|lowercase letters, digits, '-' and '_'`},
		{"check name dot", `,"checks":{"a.b":"passing"}`, `check name "a.b"`},
		{"check status", `,"checks":{"http":"ok"}`, `check http|status "ok"|passing warning critical`},
		{"check status case", `,"checks":{"http":"Passing"}`, `status "Passing"`},
		{"check status number", `,"checks":{"http":1}`, "not valid JSON"},
		{"first bad check in order", `,"checks":{"z":"bad","a":"worse"}`, `check a|"worse"`},
		{"services ok", `,"services":[{"name":"http","protocol":"tcp","port":8080},{"name":"dns","protocol":"udp","port":53},{"name":"dns","protocol":"tcp","port":53}]`, ""},
		{"service name 15", `,"services":[{"name":"abcdefghijklmno","protocol":"tcp","port":1}]`, ""},
		{"service name 16", `,"services":[{"name":"abcdefghijklmnop","protocol":"tcp","port":1}]`, "service name|1 to 15 bytes"},
		{"service name digits", `,"services":[{"name":"8080","protocol":"tcp","port":1}]`, `service name "8080"|letter`},
		{"service name underscore", `,"services":[{"name":"my_svc","protocol":"tcp","port":1}]`, `"my_svc"|lowercase`},
		{"service name upper", `,"services":[{"name":"HTTP","protocol":"tcp","port":1}]`, `"HTTP"|lowercase`},
		{"service name hyphen end", `,"services":[{"name":"http-","protocol":"tcp","port":1}]`, `"http-"|'-'`},
		{"service name double hyphen", `,"services":[{"name":"a--b","protocol":"tcp","port":1}]`, `"a--b"|"--"`},
		{"service name missing", `,"services":[{"protocol":"tcp","port":1}]`, `service name ""`},
		{"service protocol", `,"services":[{"name":"http","protocol":"sctp","port":80}]`, `service http|"sctp"|tcp or udp`},
		{"service protocol case", `,"services":[{"name":"http","protocol":"TCP","port":80}]`, `"TCP"`},
		{"service port 0", `,"services":[{"name":"http","protocol":"tcp","port":0}]`, "http/tcp|port 0|1 and 65535"},
		{"service port 65536", `,"services":[{"name":"http","protocol":"tcp","port":65536}]`, "port 65536"},
		{"service port 65535", `,"services":[{"name":"http","protocol":"tcp","port":65535}]`, ""},
		{"service port string", `,"services":[{"name":"http","protocol":"tcp","port":"80"}]`, "not valid JSON"},
		{"service twice", `,"services":[{"name":"http","protocol":"tcp","port":80},{"name":"http","protocol":"tcp","port":81}]`, "http/tcp|declared twice"},
		{"services not a list", `,"services":{"name":"http"}`, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(k, []byte(base+tc.extra+"}"))
			checkErr(t, err, tc.err)
		})
	}
}

func TestMachineHealth(t *testing.T) {
	for _, tc := range []struct {
		state   string
		checks  map[string]string
		healthy bool
		worst   string
	}{
		{StateStarted, nil, true, "none"},
		{StateStarted, map[string]string{"a": "passing"}, true, "passing"},
		{StateStarted, map[string]string{"a": "passing", "b": "warning"}, true, "warning"},
		{StateStarted, map[string]string{"a": "passing", "b": "warning", "c": "critical"}, false, "critical"},
		{StateStopped, nil, false, "none"},
	} {
		m := &Machine{State: tc.state, Checks: tc.checks}
		if m.Healthy() != tc.healthy || m.WorstCheck() != tc.worst {
			t.Errorf("%s %v: healthy %v worst %s, want %v %s", tc.state, tc.checks, m.Healthy(), m.WorstCheck(), tc.healthy, tc.worst)
		}
	}
}
