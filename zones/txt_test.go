package zones

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

func TestSplitTXT(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int // lengths of the strings
	}{
		{0, []int{0}},
		{1, []int{1}},
		{254, []int{254}},
		{255, []int{255}},
		{256, []int{255, 1}},
		{509, []int{255, 254}},
		{510, []int{255, 255}},
		{511, []int{255, 255, 1}},
		{765, []int{255, 255, 255}},
		{766, []int{255, 255, 255, 1}},
		{65535, nil},
	} {
		// A text whose every byte says where it was, so a cut that drops,
		// repeats or moves a byte shows up.
		var b strings.Builder
		for i := 0; i < tc.n; i++ {
			b.WriteByte("0123456789,; abcdef"[i%19])
		}
		s := b.String()
		got := splitTXT(s)
		if strings.Join(got, "") != s {
			t.Errorf("%d bytes: the strings do not concatenate to the text", tc.n)
		}
		for i, p := range got {
			if len(p) > 255 || (i < len(got)-1 && len(p) != 255) {
				t.Errorf("%d bytes: string %d is %d bytes", tc.n, i, len(p))
			}
		}
		if tc.want != nil {
			var lens []int
			for _, p := range got {
				lens = append(lens, len(p))
			}
			if len(lens) != len(tc.want) {
				t.Errorf("%d bytes: lengths %v, want %v", tc.n, lens, tc.want)
				continue
			}
			for i := range lens {
				if lens[i] != tc.want[i] {
					t.Errorf("%d bytes: lengths %v, want %v", tc.n, lens, tc.want)
					break
				}
			}
		}
	}
}

// TestTXTWire checks that a split record survives packing: each string
// goes out as its own character-string and comes back byte for byte.
func TestTXTWire(t *testing.T) {
	text := strings.Repeat("0123456789abcdef ams,", 40)[:800]
	rrs := txtRecord("vms.web.internal.", 5, text)
	m := new(dns.Msg)
	m.SetQuestion("vms.web.internal.", dns.TypeTXT)
	m.Answer = rrs
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	got := back.Answer[0].(*dns.TXT).Txt
	if len(got) != 4 || strings.Join(got, "") != text {
		t.Errorf("after the wire: %d strings, joined equal %v", len(got), strings.Join(got, "") == text)
	}
}

const txtRegistry = `
orgs/acme {"network":"fdaa:0:18::/48"}
apps/acme/zeta {}
machines/acme/web/b2 {"region":"iad","ip":"fdaa:0:18:1::2","state":"started"}
machines/acme/web/a1 {"region":"ams","ip":"fdaa:0:18:1::1","state":"started"}
machines/acme/web/c3 {"region":"ams","ip":"fdaa:0:18:1::3","state":"stopped"}
machines/acme/web/d4 {"region":"syd","ip":"fdaa:0:18:1::4","state":"destroyed"}
machines/acme/web/e5 {"region":"fra","ip":"fdaa:0:18:1::5","state":"started","skip_registration":true}
machines/acme/api/f6 {"region":"lhr","ip":"fdaa:0:18:2::6","state":"started"}
peers/acme/zed {"ip":"fdaa:0:18:9::1"}
peers/acme/interactive-77 {"ip":"fdaa:0:18:9::2"}
peers/acme/amy {"ip":"fdaa:0:18:9::3"}
peers/acme/interactive {"ip":"fdaa:0:18:9::4"}
`

func TestTexts(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	org := snap.Org("acme")
	web := org.App("web")
	for _, tc := range []struct{ name, got, want string }{
		{"apps", appsText(org), "api,web,zeta"},
		// "interactive" alone does not start with "interactive-".
		{"peers", peersText(org), "amy,interactive,zed"},
		{"vms", vmsText(web, false), "a1 ams,b2 iad"},
		{"all.vms", vmsText(web, true), "a1 ams,b2 iad,c3 ams"},
		{"regions", regionsText(web, false), "ams,iad"},
		{"all.regions", regionsText(web, true), "ams,iad"},
		{"vms empty", vmsText(org.App("zeta"), true), ""},
		{"_instances", instancesText(org, false),
			"instance=f6,app=api,ip=fdaa:0:18:2::6,region=lhr;" +
				"instance=a1,app=web,ip=fdaa:0:18:1::1,region=ams;" +
				"instance=b2,app=web,ip=fdaa:0:18:1::2,region=iad"},
		{"all._instances", instancesText(org, true),
			"instance=f6,app=api,ip=fdaa:0:18:2::6,region=lhr;" +
				"instance=a1,app=web,ip=fdaa:0:18:1::1,region=ams;" +
				"instance=b2,app=web,ip=fdaa:0:18:1::2,region=iad;" +
				"instance=c3,app=web,ip=fdaa:0:18:1::3,region=ams"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestRegionsTextMany goes past the stack buffer of regionsText.
func TestRegionsTextMany(t *testing.T) {
	codes := BuiltinCodes()
	var b strings.Builder
	b.WriteString(`orgs/acme {"network":"fdaa:0:18::/48"}` + "\n")
	for i := len(codes) - 1; i >= 0; i-- { // ids ascending, regions descending
		b.WriteString("machines/acme/web/" + strings.Repeat("a", i+1) + ` {"region":"` + codes[i] + `","ip":"fdaa:0:18:1::` + string(rune('1'+i%9)) + string(rune('a'+i/9)) + `","state":"started"}` + "\n")
	}
	snap := mustSnap(t, b.String())
	got := regionsText(snap.Org("acme").App("web"), false)
	if want := strings.Join(codes, ","); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestWhoami(t *testing.T) {
	snap := mustSnap(t, txtRegistry)
	org := snap.Org("acme")
	m := org.App("web").Machine("a1")
	p := org.Peer("amy")
	src := netip.MustParseAddr("fdaa:0:18:1::1")
	for _, tc := range []struct {
		a      Asker
		region string
		want   string
	}{
		{Asker{Org: org, Addr: src, Owner: registry.Owner{Machine: m}}, "ams", "org=acme,machine=a1,app=web,region=ams,ip=fdaa:0:18:1::1"},
		{Asker{Org: org, Addr: src, Owner: registry.Owner{Peer: p}}, "", "org=acme,peer=amy,ip=fdaa:0:18:1::1"},
		{Asker{Org: org, Addr: src}, "fra", "org=acme,region=fra,ip=fdaa:0:18:1::1"},
		{Asker{Org: org}, "", "org=acme,ip="},
	} {
		if got := whoamiText(tc.a, tc.region); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestCapList(t *testing.T) {
	entry := strings.Repeat("x", 99) // entries of 100 bytes with the separator
	long := strings.TrimSuffix(strings.Repeat(entry+";", 1000), ";")
	got := capList(long, ';')
	if len(got) > MaxListText || !strings.HasPrefix(long, got) || strings.HasSuffix(got, ";") || len(got)%100 != 99 {
		t.Fatalf("cut to %d bytes, ending %q", len(got), got[len(got)-5:])
	}
	if len(got) < MaxListText-100 {
		t.Fatalf("cut too early: %d bytes", len(got))
	}
	if short := "a,b,c"; capList(short, ',') != short {
		t.Fatal("short list changed")
	}
}
