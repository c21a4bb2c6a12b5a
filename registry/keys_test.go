package registry

import (
	"testing"
)

func TestParseKey(t *testing.T) {
	const p = DefaultPrefix
	for _, tc := range []struct {
		key  string
		want Key
		err  string // substrings, '|'-separated
	}{
		{p + "orgs/acme", OrgKey("acme"), ""},
		{p + "apps/acme/web", AppKey("acme", "web"), ""},
		{p + "machines/acme/web/3d8d9e0b2ee489", MachineKey("acme", "web", "3d8d9e0b2ee489"), ""},
		{p + "peers/acme/alice-laptop", PeerKey("acme", "alice-laptop"), ""},
		{p + "gateways/ams", GatewayKey("ams"), ""},
		{p + "regions/ams", RegionKey("ams"), ""},

		// Prefix.
		{"/other/v1/orgs/acme", Key{}, `"/other/v1/orgs/acme"|not under prefix`},
		{"orgs/acme", Key{}, "not under prefix"},
		{"/meshdns/v1orgs/acme", Key{}, "not under prefix"},
		{"/meshdns/v2/orgs/acme", Key{}, "not under prefix"},

		// Kind.
		{p + "widgets/acme", Key{}, `unknown kind "widgets"`},
		{p + "Orgs/acme", Key{}, `unknown kind "Orgs"`},
		{p + "org/acme", Key{}, `unknown kind "org"`},
		{p, Key{}, `unknown kind ""`},
		{p + "/orgs/acme", Key{}, `unknown kind ""`},

		// Segment counts.
		{p + "orgs", Key{}, "orgs keys have 1 name segment"},
		{p + "orgs/", Key{}, "orgs keys have 1"},
		{p + "orgs/acme/web", Key{}, "orgs keys have 1"},
		{p + "orgs/acme/", Key{}, "orgs keys have 1"},
		{p + "apps/acme", Key{}, "apps keys have 2"},
		{p + "apps/acme/web/x", Key{}, "apps keys have 2"},
		{p + "machines/acme/web", Key{}, "machines keys have 3"},
		{p + "machines/acme/web/0a/1", Key{}, "machines keys have 3"},
		{p + "peers/acme", Key{}, "peers keys have 2"},
		{p + "peers/acme/alice/x", Key{}, "peers keys have 2"},
		{p + "gateways/ams/1", Key{}, "gateways keys have 1"},
		{p + "regions", Key{}, "regions keys have 1"},

		// Names.
		{p + "orgs/Acme", Key{}, `org "Acme"|lowercase`},
		{p + "apps/acme/", Key{}, `app ""|1 to 63`},
		{p + "apps//web", Key{}, `org ""`},
		{p + "apps/acme/web_1", Key{}, `app "web_1"`},
		{p + "machines/acme//0a", Key{}, `app ""`},
		{p + "machines/acme/web/XYZ", Key{}, `machine id "XYZ"|lowercase hex`},
		{p + "machines/acme/web/", Key{}, `machine id ""`},
		{p + "machines/-acme/web/0a", Key{}, `org "-acme"`},
		{p + "peers/acme/Alice", Key{}, `peer "Alice"`},
		{p + "gateways/am", Key{}, `region "am"`},
		{p + "regions/vms", Key{}, `region "vms"|reserved`},
		{p + "regions/AMS", Key{}, `region "AMS"`},
		{p + "orgs/acme\x00", Key{}, "lowercase"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			k, err := ParseKey(p, tc.key)
			checkErr(t, err, tc.err)
			if err != nil && tc.err != "" && k != (Key{}) {
				t.Errorf("ParseKey returned %+v along with the error", k)
			}
			if tc.err != "" {
				return
			}
			if k != tc.want {
				t.Errorf("ParseKey = %+v, want %+v", k, tc.want)
			}
			if got := p + k.Path(); got != tc.key {
				t.Errorf("Path() gives %q, want %q", got, tc.key)
			}
			if k.String() != k.Path() {
				t.Errorf("String() = %q, Path() = %q", k.String(), k.Path())
			}
		})
	}
}

// Every error names the key it is about, since it ends up in logs.
func TestParseKeyErrorNamesKey(t *testing.T) {
	for _, key := range []string{"/x", DefaultPrefix + "nope/a", DefaultPrefix + "orgs/a/b", DefaultPrefix + "orgs/A"} {
		if _, err := ParseKey(DefaultPrefix, key); err == nil {
			t.Errorf("ParseKey(%q) succeeded", key)
		} else {
			checkErr(t, err, `"`+key+`"`)
		}
	}
}

func TestParseKeyOtherPrefixes(t *testing.T) {
	k := MachineKey("acme", "web", "0a")
	for _, prefix := range []string{"", "/", "tenant-a/", "/a/b/c/"} {
		got, err := ParseKey(prefix, prefix+k.Path())
		if err != nil || got != k {
			t.Errorf("prefix %q: ParseKey = %+v, %v; want %+v", prefix, got, err, k)
		}
	}
	// A prefix given without its trailing slash leaves a slash before the
	// kind, which is refused rather than guessed at.
	if got, err := ParseKey("/meshdns/v1", "/meshdns/v1/"+k.Path()); err == nil {
		t.Errorf("ParseKey with prefix lacking '/' = %+v, want an error", got)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindOrg: "orgs", KindApp: "apps", KindMachine: "machines", KindPeer: "peers",
		KindGateway: "gateways", KindRegion: "regions", 0: "kind(0)", 7: "kind(7)", 255: "kind(255)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
	if got := (Key{Kind: 9, Name: "x"}).Path(); got != "" {
		t.Errorf("Path of an unknown kind = %q, want empty", got)
	}
}

func TestKeyConstructors(t *testing.T) {
	for _, tc := range []struct {
		k    Key
		path string
	}{
		{OrgKey("acme"), "orgs/acme"},
		{AppKey("acme", "web"), "apps/acme/web"},
		{MachineKey("acme", "web", "0a"), "machines/acme/web/0a"},
		{PeerKey("acme", "bob"), "peers/acme/bob"},
		{GatewayKey("ams"), "gateways/ams"},
		{RegionKey("ams"), "regions/ams"},
	} {
		if tc.k.Path() != tc.path {
			t.Errorf("%+v.Path() = %q, want %q", tc.k, tc.k.Path(), tc.path)
		}
		if tc.k.Name == "" {
			t.Errorf("%+v: Name is empty; it must identify the object in its parent", tc.k)
		}
	}
}
