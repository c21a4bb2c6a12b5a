package zones

import "testing"

func TestSplitZone(t *testing.T) {
	for _, tc := range []struct {
		name string
		zone zone
		rest string
		apex bool
	}{
		{"internal.", zoneInternal, "", true},
		{"internal", zoneInternal, "", true},
		{"InTeRnAl.", zoneInternal, "", true},
		{"flycast.", zoneFlycast, "", true},
		{"web.internal.", zoneInternal, "web", false},
		{"web.internal", zoneInternal, "web", false},
		{"A.B.Internal.", zoneInternal, "A.B", false},
		{"web.FLYCAST.", zoneFlycast, "web", false},
		{".internal.", zoneInternal, "", false}, // an empty label, not the apex
		{`a\\.internal.`, zoneInternal, `a\\`, false},
		{`foo\.internal.`, zoneNone, "", false}, // one label "foo.internal" under the root
		{`internal\.`, zoneNone, "", false},
		{"xinternal.", zoneNone, "", false},
		{"internal.example.", zoneNone, "", false},
		{"web.internalx.", zoneNone, "", false},
		{"nternal.", zoneNone, "", false},
		{".", zoneNone, "", false},
		{"", zoneNone, "", false},
		{"flycast.internal.", zoneInternal, "flycast", false},
		{"internal.flycast.", zoneFlycast, "internal", false},
	} {
		z, rest, apex := splitZone(tc.name)
		if z != tc.zone || rest != tc.rest || apex != tc.apex {
			t.Errorf("splitZone(%q) = %v %q %v, want %v %q %v", tc.name, z, rest, apex, tc.zone, tc.rest, tc.apex)
		}
		if InZone(tc.name) != (tc.zone != zoneNone) {
			t.Errorf("InZone(%q) = %v", tc.name, !(tc.zone != zoneNone))
		}
	}
}

func TestInZoneAllocates(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { InZone("Top2.Nearest.Of.Web.INTERNAL.") }); n != 0 {
		t.Errorf("InZone allocates %v times", n)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		rest string
		want target
	}{
		{"_api", target{kind: apiAddr}},
		{"_apps", target{kind: appList}},
		{"_instances", target{kind: instances}},
		{"all._instances", target{kind: instances, all: true}},
		{"x._instances", target{}},
		{"_peer", target{kind: peerList}},
		{"laptop._peer", target{kind: peerAddr, arg: "laptop"}},
		{"_whoami", target{kind: whoami}},
		{"_other", target{kind: appAddrs, app: "_other"}}, // no app can be called that: NXDOMAIN later
		{"web", target{kind: appAddrs, app: "web"}},
		{"global.web", target{kind: appAddrs, app: "web"}},
		{"ams.web", target{kind: regionAddrs, app: "web", arg: "ams"}},
		{"am.web", target{}},
		{"amsx.web", target{}},
		{"am5.web", target{}},
		{"vms.web", target{kind: vmList, app: "web"}},
		{"all.vms.web", target{kind: vmList, app: "web", all: true}},
		{"x.vms.web", target{}},
		{"regions.web", target{kind: regionList, app: "web"}},
		{"all.regions.web", target{kind: regionList, app: "web", all: true}},
		{"all.web", target{}}, // "all" is reserved as a region: no machine can match
		{"vm.web", target{kind: entMachines, app: "web"}},
		{"3d8d.vm.web", target{kind: machineAddr, app: "web", arg: "3d8d"}},
		{"process.web", target{kind: entMachines, app: "web"}},
		{"app.process.web", target{kind: groupAddrs, app: "web", arg: "app"}},
		{"of.web", target{kind: entApp, app: "web"}},
		{"nearest.of.web", target{kind: entApp, app: "web"}},
		{"x.of.web", target{}},
		{"top1.nearest.of.web", target{kind: nearestAddrs, app: "web", n: 1}},
		{"top64.nearest.of.web", target{kind: nearestAddrs, app: "web", n: 64}},
		{"top65.nearest.of.web", target{}},
		{"_metadata.web", target{kind: entMeta, app: "web"}},
		{"kv._metadata.web", target{kind: entMeta, app: "web"}},
		{"x._metadata.web", target{}},
		{"role.kv._metadata.web", target{kind: entMetaKey, app: "web", arg: "role"}},
		{"primary.role.kv._metadata.web", target{kind: metaAddrs, app: "web", arg: "role", val: "primary"}},
		{"primary.role.kv.x.web", target{}},
		{"a.primary.role.kv._metadata.web", target{}},
		{"a.b.c.d.e.f.g.h", target{}},
		{"", target{}}, // ".internal."
		{"a..web", target{}},
		{"top.web", target{}},
		{"vms.vms", target{kind: vmList, app: "vms"}}, // an app may be called vms
		{"checks.web", target{kind: checkList, app: "web"}},
		{"x.checks.web", target{}},
		{"checks", target{kind: appAddrs, app: "checks"}}, // an app may be called checks
		{"_tcp.web", target{kind: entProto, app: "web", val: "tcp"}},
		{"_udp.web", target{kind: entProto, app: "web", val: "udp"}},
		{"_sctp.web", target{}},
		{"_http._tcp.web", target{kind: srvName, app: "web", arg: "http", val: "tcp"}},
		{"_http._udp.web", target{kind: srvName, app: "web", arg: "http", val: "udp"}},
		{"_._tcp.web", target{}},
		{"http._tcp.web", target{}},
		{"_http.tcp.web", target{}},
		{"x._http._tcp.web", target{}},
		{"web.", target{}},
		{`we\098.internal`, target{}},
	} {
		if got := parse(zoneInternal, tc.rest); got != tc.want {
			t.Errorf("parse(%q) = %+v, want %+v", tc.rest, got, tc.want)
		}
	}
}

func TestParseFlycast(t *testing.T) {
	for _, tc := range []struct {
		rest string
		want target
	}{
		{"web", target{kind: flycastAddr, app: "web"}},
		{"global.web", target{}},
		{"a.b", target{}},
	} {
		if got := parse(zoneFlycast, tc.rest); got != tc.want {
			t.Errorf("parse(flycast, %q) = %+v, want %+v", tc.rest, got, tc.want)
		}
	}
}

func TestParseTop(t *testing.T) {
	for _, tc := range []struct {
		s  string
		n  int
		ok bool
	}{
		{"top1", 1, true}, {"top9", 9, true}, {"top10", 10, true}, {"top64", 64, true},
		{"top0", 0, false}, {"top65", 0, false}, {"top99", 0, false}, {"top100", 0, false},
		{"top01", 0, false}, {"top001", 0, false}, {"top", 0, false}, {"topx", 0, false},
		{"top1x", 0, false}, {"top-1", 0, false}, {"top+1", 0, false}, {"tops", 0, false},
		{"to1", 0, false}, {"xtop1", 0, false}, {"top 1", 0, false},
	} {
		n, ok := parseTop(tc.s)
		if n != tc.n || ok != tc.ok {
			t.Errorf("parseTop(%q) = %d %v, want %d %v", tc.s, n, ok, tc.n, tc.ok)
		}
	}
}

func TestParseAllocates(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { parse(zoneInternal, "primary.role.kv._metadata.web") }); n != 0 {
		t.Errorf("parse allocates %v times", n)
	}
}
