package zones

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func wire(t *testing.T, name string) []byte {
	t.Helper()
	b := make([]byte, 256)
	n, err := dns.PackDomainName(strings.ToLower(name), b, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func TestWireScope(t *testing.T) {
	for _, tc := range []struct {
		name     string
		app      string
		perAsker bool
		inZone   bool
	}{
		{"internal.", "", false, true},
		{"web.internal.", "web", false, true},
		{"0a01.vm.web.internal.", "web", false, true},
		{"x.kv._metadata.web.internal.", "web", false, true},
		{"_apps.internal.", "", false, true},
		{"_instances.internal.", "", false, true},
		{"a._peer.internal.", "", false, true},
		{"_whoami.internal.", "", true, true},
		{"x._whoami.internal.", "", false, true},
		{"web.flycast.", "web", false, true},
		{"flycast.", "", false, true},
		{"2.0.0.0.a.a.d.f.ip6.arpa.", "", false, true},
		{"a.a.d.f.ip6.arpa.", "", false, true},
		{"b.a.d.f.ip6.arpa.", "", false, false},
		{"xa.a.d.f.ip6.arpa.", "", false, false},
		{"example.com.", "", false, false},
		{"internal.example.", "", false, false},
		{".", "", false, false},
	} {
		sc := WireScope(wire(t, tc.name))
		if sc.InZone != tc.inZone || string(sc.App) != tc.app || sc.PerAsker != tc.perAsker {
			t.Errorf("%s: %+v, want in zone %v, app %q, per asker %v", tc.name, sc, tc.inZone, tc.app, tc.perAsker)
		}
		if sc.InZone != InZone(tc.name) {
			t.Errorf("%s: WireScope says in zone %v, InZone %v", tc.name, sc.InZone, InZone(tc.name))
		}
	}
	sc := WireScope(wire(t, "web.internal."))
	if sc.AnswerApp(dns.TypeSOA, true) != nil || sc.AnswerApp(dns.TypeAAAA, false) != nil || string(sc.AnswerApp(dns.TypeAAAA, true)) != "web" {
		t.Error("AnswerApp: want the app for positive answers other than SOA only")
	}
	w := wire(t, "0a01.vm.web.internal.")
	if n := testing.AllocsPerRun(100, func() { WireScope(w) }); n != 0 {
		t.Errorf("WireScope allocates")
	}
}
