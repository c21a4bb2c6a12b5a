package etcdclient

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCheck(t *testing.T) {
	t.Setenv(PasswordEnv, "")
	t.Setenv("OLD_PASSWORD", "")
	ok := Settings{Endpoints: []string{"10.0.0.1:2379"}, Prefix: "/meshdns/v1/"}
	for _, tc := range []struct {
		name string
		edit func(*Settings)
		want string
	}{
		{"fine", func(*Settings) {}, ""},
		{"relative prefix", func(s *Settings) { s.Prefix = "meshdns/" }, `--etcd-prefix "meshdns/": must start and end with /`},
		{"prefix without trailing slash", func(s *Settings) { s.Prefix = "/meshdns" }, "must start and end with /"},
		{"no endpoint", func(s *Settings) { s.Endpoints = nil }, "--etcd-endpoints: no endpoint given"},
		{"empty endpoint", func(s *Settings) { s.Endpoints = []string{"a:1", " "} }, "empty endpoint"},
		{"cert without key", func(s *Settings) { s.Cert = "c.pem" }, "--etcd-cert and --etcd-key: give both"},
		{"TLS over http", func(s *Settings) { s.CACert, s.Endpoints = "ca.pem", []string{"http://a:1"} }, `"http://a:1": plain http`},
		{"no password", func(s *Settings) { s.User = "alice" }, "--etcd-user alice: no password; set $MESHDNS_ETCD_PASSWORD"},
		{"inline password refused", func(s *Settings) { s.User = "alice:pw" }, "give only the user name"},
		{"inline password allowed", func(s *Settings) { s.User, s.InlinePassword = "alice:pw", true }, ""},
		{"empty user", func(s *Settings) { s.User, s.InlinePassword = ":pw", true }, "empty user name"},
	} {
		s := ok
		tc.edit(&s)
		err := s.Check()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestPasswordSources(t *testing.T) {
	s := Settings{Endpoints: []string{"a:1"}, Prefix: "/p/", User: "alice", FallbackPasswordEnvs: []string{"OLD_PASSWORD"}}
	for _, tc := range []struct{ canonical, old, want string }{
		{"new", "", "new"}, {"", "old", "old"}, {"new", "old", "new"},
	} {
		t.Setenv(PasswordEnv, tc.canonical)
		t.Setenv("OLD_PASSWORD", tc.old)
		cfg, err := s.Config(nil, 0)
		if err != nil || cfg.Username != "alice" || cfg.Password != tc.want {
			t.Errorf("%+v: user %q password %q (%v), want %q", tc, cfg.Username, cfg.Password, err, tc.want)
		}
	}
}

func TestAliasesShareValues(t *testing.T) {
	var s Settings
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Register(fs, &s, nil, "/p/")
	RegisterAliases(fs, &s)
	if err := fs.Parse([]string{"--cacert", "ca", "--cert", "c", "--key", "k", "--user", "u"}); err != nil {
		t.Fatal(err)
	}
	if s.CACert != "ca" || s.Cert != "c" || s.Key != "k" || s.User != "u" {
		t.Errorf("old names set %+v", s)
	}
	for old := range Aliases {
		if f := fs.Lookup(old); f == nil || !f.Hidden {
			t.Errorf("--%s: %+v, want a hidden flag", old, f)
		}
	}
}
