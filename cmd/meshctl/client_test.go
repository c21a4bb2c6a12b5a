package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/etcdclient"
	"github.com/meshdns/meshdns/internal/etcdclient/etcdclienttest"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/spf13/pflag"
)

// parseGlobals parses global flags the way the root command does.
func parseGlobals(t *testing.T, args ...string) *globalFlags {
	t.Helper()
	g := &globalFlags{}
	fs := pflag.NewFlagSet("meshctl", pflag.ContinueOnError)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestClientConfig(t *testing.T) {
	t.Setenv(etcdclient.PasswordEnv, "") // the cases that want them set them themselves
	t.Setenv(oldPasswordEnv, "")
	certs := etcdclienttest.WriteCerts(t)
	ca, cert, key := certs+"/ca.pem", certs+"/client.pem", certs+"/client-key.pem"

	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseGlobals(t).clientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Endpoints) != 1 || cfg.Endpoints[0] != "127.0.0.1:2379" || cfg.DialTimeout != 5*time.Second || cfg.TLS != nil || cfg.Username != "" {
			t.Errorf("config %+v, want 127.0.0.1:2379, 5s dial timeout, no TLS, no user", cfg)
		}
	})
	t.Run("endpoints are split and trimmed", func(t *testing.T) {
		cfg, err := parseGlobals(t, "--etcd-endpoints", "10.0.0.1:2379, 10.0.0.2:2379", "--etcd-endpoints", "https://10.0.0.3:2379").clientConfig()
		if err != nil {
			t.Fatal(err)
		}
		// Shuffled, like meshdns's, so a fleet of callers spreads out.
		if got := strings.Join(slices.Sorted(slices.Values(cfg.Endpoints)), " "); got != "10.0.0.1:2379 10.0.0.2:2379 https://10.0.0.3:2379" {
			t.Errorf("endpoints %s", got)
		}
	})
	t.Run("TLS with a client certificate", func(t *testing.T) {
		cfg, err := parseGlobals(t, "--cacert", ca, "--cert", cert, "--key", key).clientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS == nil || cfg.TLS.RootCAs == nil || cfg.TLS.GetClientCertificate == nil {
			t.Fatalf("TLS config %+v, want the CA and the client certificate", cfg.TLS)
		}
		c, err := cfg.TLS.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err != nil || leaf.Subject.CommonName != "root" {
			t.Errorf("client certificate %v (%v), want the one for CN root", leaf, err)
		}
	})
	t.Run("TLS with only a CA", func(t *testing.T) {
		cfg, err := parseGlobals(t, "--cacert", ca).clientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS == nil || cfg.TLS.RootCAs == nil {
			t.Errorf("TLS config %+v, want the CA", cfg.TLS)
		}
	})
	t.Run("password after the user name may contain colons", func(t *testing.T) {
		cfg, err := parseGlobals(t, "--user", "alice:s3:cr3t").clientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != "alice" || cfg.Password != "s3:cr3t" {
			t.Errorf("user %q password %q, want alice and s3:cr3t", cfg.Username, cfg.Password)
		}
	})
	t.Run("password from the environment", func(t *testing.T) {
		for _, tc := range []struct{ canonical, old, want string }{
			{"fromenv", "", "fromenv"},
			{"", "fromold", "fromold"},        // meshctl's old variable still works
			{"fromenv", "fromold", "fromenv"}, // the shared one wins
		} {
			t.Setenv(etcdclient.PasswordEnv, tc.canonical)
			t.Setenv(oldPasswordEnv, tc.old)
			cfg, err := parseGlobals(t, "--etcd-user", "alice").clientConfig()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != "alice" || cfg.Password != tc.want {
				t.Errorf("$%s=%q $%s=%q: user %q password %q, want alice and %s", etcdclient.PasswordEnv, tc.canonical, oldPasswordEnv, tc.old, cfg.Username, cfg.Password, tc.want)
			}
		}
	})

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"empty endpoint", []string{"--etcd-endpoints", "10.0.0.1:2379,,10.0.0.2:2379"}, "empty endpoint"},
		{"prefix without slash", []string{"--etcd-prefix", "/meshdns/v1"}, `--etcd-prefix "/meshdns/v1": must start and end with /`},
		{"relative prefix", []string{"--etcd-prefix", "meshdns/v1/"}, `--etcd-prefix "meshdns/v1/": must start and end with /`},
		{"cert without key", []string{"--cert", cert}, "--etcd-cert and --etcd-key: give both"},
		{"key without cert", []string{"--etcd-key", key}, "--etcd-cert and --etcd-key: give both"},
		{"missing CA file", []string{"--cacert", certs + "/nope.pem"}, "nope.pem"},
		{"TLS to a plain http endpoint", []string{"--cacert", ca, "--etcd-endpoints", "http://10.0.0.1:2379"}, `"http://10.0.0.1:2379": plain http`},
		{"user without password", []string{"--user", "alice"}, "--etcd-user alice: no password; set $MESHDNS_ETCD_PASSWORD"},
		{"password without user", []string{"--user", ":pw"}, "empty user name"},
		{"zero dial timeout", []string{"--dial-timeout", "0s"}, "--dial-timeout 0s: must be positive"},
		{"negative timeout", []string{"--timeout", "-1s"}, "--timeout -1s: must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseGlobals(t, tt.args...).clientConfig()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestOldFlagNames: meshctl's flag names from before it shared meshdns's
// (--cacert, --cert, --key, --user) still set the same values as the
// canonical --etcd-* ones, and stay out of the help.
func TestOldFlagNames(t *testing.T) {
	certs := etcdclienttest.WriteCerts(t)
	for _, tc := range []struct{ old, canonical, value string }{
		{"--cacert", "--etcd-cacert", certs + "/ca.pem"},
		{"--cert", "--etcd-cert", certs + "/client.pem"},
		{"--key", "--etcd-key", certs + "/client-key.pem"},
		{"--user", "--etcd-user", "alice:pw"},
		{"--user", "--etcd-user", "alice"},
	} {
		t.Run(tc.old+"="+tc.value, func(t *testing.T) {
			old, canon := parseGlobals(t, tc.old, tc.value), parseGlobals(t, tc.canonical, tc.value)
			if old.etcd.CACert != canon.etcd.CACert || old.etcd.Cert != canon.etcd.Cert || old.etcd.Key != canon.etcd.Key || old.etcd.User != canon.etcd.User {
				t.Errorf("%s %s set %+v, %s %s set %+v", tc.old, tc.value, old.etcd, tc.canonical, tc.value, canon.etcd)
			}
			if canon.etcd.User+canon.etcd.CACert+canon.etcd.Cert+canon.etcd.Key != tc.value {
				t.Errorf("%s %s set nothing: %+v", tc.canonical, tc.value, canon.etcd)
			}
		})
	}
	// Through the whole command line too, with a real TLS check: the old
	// names reach the client configuration.
	t.Setenv(etcdclient.PasswordEnv, "")
	t.Setenv(oldPasswordEnv, "")
	checkOneLineError(t, runArgs("--cacert", certs+"/nope.pem", "--etcd-endpoints", "127.0.0.1:1", "org", "list"), exitFailure, `--etcd-cacert "`+certs+`/nope.pem"`)
	checkOneLineError(t, runArgs("--user", "alice", "--etcd-endpoints", "127.0.0.1:1", "org", "list"), exitFailure, "--etcd-user alice: no password")
	help := runArgs("--help")
	for _, old := range []string{"--cacert", "--cert ", "--key ", "--user "} {
		if strings.Contains(help.stdout, old) {
			t.Errorf("meshctl --help lists the old flag %s:\n%s", old, help.stdout)
		}
	}
	if !strings.Contains(help.stdout, "--etcd-cacert") {
		t.Errorf("meshctl --help does not list --etcd-cacert:\n%s", help.stdout)
	}
}

// TestSameClientConfigAsMeshdns: from the same canonical etcd flags and
// password variable, meshctl builds the configuration the shared builder
// does; cmd/meshdns's TestSameClientConfigAsMeshctl checks meshdns
// against the same builder and flags.
func TestSameClientConfigAsMeshdns(t *testing.T) {
	args := etcdclienttest.Canonical(t)
	got, err := parseGlobals(t, args...).clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	etcdclienttest.Compare(t, got, etcdclienttest.Want(t, args))
}

func runArgs(args ...string) result {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// TestUnreachable checks that an etcd that does not answer is reported
// after --dial-timeout rather than --timeout, and that a bad value is
// reported without waiting for etcd at all.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"org", "list"}, "etcd at 127.0.0.1:1 did not answer within --dial-timeout 300ms"},
		{[]string{"org", "put", "Acme", "--network", "fdaa:0:18::/48"}, `org "Acme": only lowercase`},
	} {
		var out, errOut bytes.Buffer
		start := time.Now()
		args := append([]string{"--etcd-endpoints", "127.0.0.1:1", "--dial-timeout", "300ms"}, tt.args...)
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("meshctl %s took %v, want it to give up after the dial timeout", strings.Join(tt.args, " "), took)
		}
		checkOneLineError(t, result{code, out.String(), errOut.String()}, exitFailure, tt.want)
	}
}

// TestAuth runs meshctl against an etcd with authentication enabled.
func TestAuth(t *testing.T) {
	e := etcdtest.Embedded(t)
	r := newTestRegistry(t, e)
	ctx := context.Background()
	if _, err := r.cli.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}

	r.mustRun("--user", "root:rootpw", "org", "put", "acme", "--network", "fdaa:0:18::/48")
	t.Setenv(etcdclient.PasswordEnv, "rootpw")
	if out := r.mustRun("--etcd-user", "root", "org", "list"); !strings.Contains(out, "acme") {
		t.Errorf("org list with the password from %s: %q, want acme listed", etcdclient.PasswordEnv, out)
	}
	t.Setenv(etcdclient.PasswordEnv, "")
	t.Setenv(oldPasswordEnv, "rootpw")
	if out := r.mustRun("--user", "root", "org", "list"); !strings.Contains(out, "acme") {
		t.Errorf("org list with the old flag and the password from %s: %q, want acme listed", oldPasswordEnv, out)
	}

	checkOneLineError(t, r.run("--user", "root:wrong", "org", "list"), exitFailure, "authentication failed")
	checkOneLineError(t, r.run("org", "list"), exitFailure, "requires authentication: give --etcd-user NAME and the password in $MESHDNS_ETCD_PASSWORD")
}
