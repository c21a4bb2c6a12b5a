// Package etcdclient is the one way meshdns and meshctl turn their etcd
// flags into a client configuration: the same flag names, the same checks
// of the prefix, endpoints, TLS files and user, the same password
// variable, and the same clientv3.Config (TLS, auth, dial timeout,
// reconnect backoff, endpoints shuffled per process).
//
// meshdns defines its flags in its settings table (cmd/meshdns) and calls
// CheckPrefix, Settings.Check and Settings.Config from there; meshctl
// registers them with Register and keeps its old names with
// RegisterAliases.
package etcdclient

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// PasswordEnv holds the password of --etcd-user for both programs: a
// password on the command line would show in ps, shell history and unit
// files.
const PasswordEnv = "MESHDNS_ETCD_PASSWORD"

// The canonical flag names.
const (
	FlagEndpoints = "etcd-endpoints"
	FlagPrefix    = "etcd-prefix"
	FlagCACert    = "etcd-cacert"
	FlagCert      = "etcd-cert"
	FlagKey       = "etcd-key"
	FlagUser      = "etcd-user"
)

// Help texts of the canonical flags, shared so both programs describe them
// alike.
const (
	HelpPrefix = "etcd key prefix of the registry; must start and end with /"
	HelpCACert = "CA bundle to verify etcd's server certificates (turns on TLS)"
	HelpCert   = "client certificate for etcd (with --etcd-key)"
	HelpKey    = "private key of --etcd-cert"
	HelpUser   = "etcd user name; the password is read from $" + PasswordEnv
)

// DefaultDialTimeout is how long a client waits for its first connection.
const DefaultDialTimeout = 5 * time.Second

// Settings are the values of the etcd flags.
type Settings struct {
	Endpoints         []string
	Prefix            string
	CACert, Cert, Key string
	User              string

	// FallbackPasswordEnvs are read, in order, when $MESHDNS_ETCD_PASSWORD
	// is empty (meshctl: $MESHCTL_PASSWORD, its old name).
	FallbackPasswordEnvs []string
	// InlinePassword lets User be NAME:PASSWORD (meshctl, for scripts
	// written before the variable); meshdns refuses it.
	InlinePassword bool
}

// Register adds the canonical flags to fs, bound to s; endpoints default
// to defaultEndpoints and the prefix to defaultPrefix.
func Register(fs *pflag.FlagSet, s *Settings, defaultEndpoints []string, defaultPrefix string) {
	fs.StringSliceVar(&s.Endpoints, FlagEndpoints, defaultEndpoints, "etcd client endpoints, comma-separated (https:// or no scheme for TLS)")
	fs.StringVar(&s.Prefix, FlagPrefix, defaultPrefix, HelpPrefix)
	fs.StringVar(&s.CACert, FlagCACert, "", HelpCACert)
	fs.StringVar(&s.Cert, FlagCert, "", HelpCert)
	fs.StringVar(&s.Key, FlagKey, "", HelpKey)
	fs.StringVar(&s.User, FlagUser, "", HelpUser)
}

// Aliases maps meshctl's old flag names to the canonical ones.
var Aliases = map[string]string{
	"cacert": FlagCACert,
	"cert":   FlagCert,
	"key":    FlagKey,
	"user":   FlagUser,
}

// RegisterAliases adds the old names in Aliases as hidden flags bound to
// the same values as the canonical ones (call Register first), so command
// lines and scripts written for them keep working. Given both, the one
// later on the command line wins.
func RegisterAliases(fs *pflag.FlagSet, s *Settings) {
	fields := map[string]*string{FlagCACert: &s.CACert, FlagCert: &s.Cert, FlagKey: &s.Key, FlagUser: &s.User}
	for _, old := range slices.Sorted(maps.Keys(Aliases)) {
		canon := Aliases[old]
		fs.StringVar(fields[canon], old, "", "old name of --"+canon)
		if err := fs.MarkHidden(old); err != nil {
			panic(err) // the flag was just defined
		}
	}
}

// CheckPrefix checks --etcd-prefix: an absolute etcd directory, starting
// and ending with /, as every key the registry reads and writes is the
// prefix followed by a path like orgs/acme.
func CheckPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("--%s %q: must start and end with / (e.g. /meshdns/v1/)", FlagPrefix, prefix)
	}
	return nil
}

// TLS reports whether any TLS flag is given.
func (s Settings) TLS() bool { return s.CACert != "" || s.Cert != "" || s.Key != "" }

// CheckCertKey checks that --etcd-cert and --etcd-key come together.
func (s Settings) CheckCertKey() error {
	if (s.Cert == "") != (s.Key == "") {
		return fmt.Errorf("--%s and --%s: give both (the client certificate and its private key) or neither", FlagCert, FlagKey)
	}
	return nil
}

// Check checks the settings for an external etcd without touching files
// or the network: the prefix, at least one endpoint and no empty one,
// --etcd-cert and --etcd-key together, no plain http:// endpoint with TLS,
// and a user with a password. Its errors name the flag at fault.
func (s Settings) Check() error {
	if err := CheckPrefix(s.Prefix); err != nil {
		return err
	}
	if err := s.CheckCertKey(); err != nil {
		return err
	}
	if len(s.Endpoints) == 0 {
		return fmt.Errorf("--%s: no endpoint given", FlagEndpoints)
	}
	for _, ep := range s.Endpoints {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			return fmt.Errorf("--%s %q: empty endpoint; give host:port, comma-separated", FlagEndpoints, strings.Join(s.Endpoints, ","))
		}
		// The client talks plain text to an http:// endpoint even with
		// TLS configured, sending the password in the clear.
		if s.TLS() && strings.HasPrefix(ep, "http://") {
			return fmt.Errorf("--%s %q: plain http, but TLS flags are given; use https:// or no scheme", FlagEndpoints, ep)
		}
	}
	_, _, err := s.credentials()
	return err
}

// credentials returns the user name and password.
func (s Settings) credentials() (user, password string, err error) {
	if s.User == "" {
		return "", "", nil
	}
	user, password, inline := strings.Cut(s.User, ":")
	if inline && !s.InlinePassword {
		return "", "", fmt.Errorf("--%s: give only the user name; put the password in $%s", FlagUser, PasswordEnv)
	}
	if user == "" {
		return "", "", fmt.Errorf("--%s %q: empty user name; give the user name and the password in $%s", FlagUser, s.User, PasswordEnv)
	}
	if !inline {
		password = os.Getenv(PasswordEnv)
		for _, env := range s.FallbackPasswordEnvs {
			if password != "" {
				break
			}
			password = os.Getenv(env)
		}
	}
	if password == "" {
		return "", "", fmt.Errorf("--%s %s: no password; set $%s", FlagUser, user, PasswordEnv)
	}
	return user, password, nil
}

// WindowSize is the HTTP/2 flow-control window of each stream and of the
// connection to etcd (see WindowOptions).
const WindowSize = 4 << 20

// WindowOptions fix gRPC's flow-control windows at WindowSize. With the
// default (dynamic) windows, gRPC estimates the bandwidth-delay product by
// sending a PING with the first data it receives after the last PING's
// answer: for a watch that gets an event every few tens of milliseconds,
// that is one PING and one answer per event, on the host and on etcd or
// its gRPC proxy (TestWatchSendsNoPingPerEvent). A fixed 4 MiB window
// still lets a full load's pages (about 20 MB at the default page size)
// stream at 80 MB/s over a 50 ms round trip.
func WindowOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(WindowSize), grpc.WithInitialConnWindowSize(WindowSize)}
}

// Config checks the settings and turns them into a client configuration:
// the endpoints trimmed and shuffled, TLS from the files (read now, so a
// missing file is reported here, naming the flags), the user and
// password, dialTimeout (DefaultDialTimeout when 0), a reconnect backoff
// capped at 5s, and log (errors only; nil: none) for the client's own
// messages.
func (s Settings) Config(log *zap.Logger, dialTimeout time.Duration) (clientv3.Config, error) {
	if dialTimeout == 0 {
		dialTimeout = DefaultDialTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg := clientv3.Config{
		DialTimeout: dialTimeout,
		Logger:      log.WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
		// gRPC's default reconnect backoff grows to two minutes, so a
		// server that lost etcd would go on serving an old snapshot for
		// that long after etcd is back. Cap it at a few seconds; the
		// jitter keeps a fleet from reconnecting in step.
		DialOptions: append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})}, WindowOptions()...),
	}
	if dialTimeout < 0 {
		return cfg, fmt.Errorf("dial timeout %s: must be positive", dialTimeout)
	}
	if err := s.Check(); err != nil {
		return cfg, err
	}
	for _, ep := range s.Endpoints {
		cfg.Endpoints = append(cfg.Endpoints, strings.TrimSpace(ep))
	}
	cfg.Endpoints = shuffled(cfg.Endpoints)
	if s.TLS() {
		info := transport.TLSInfo{CertFile: s.Cert, KeyFile: s.Key, TrustedCAFile: s.CACert}
		tlsCfg, err := info.ClientConfig()
		if err != nil {
			return cfg, fmt.Errorf("etcd TLS from --%s %q --%s %q --%s %q: %w", FlagCACert, s.CACert, FlagCert, s.Cert, FlagKey, s.Key, err)
		}
		cfg.TLS = tlsCfg
	}
	user, password, err := s.credentials()
	if err != nil {
		return cfg, err
	}
	cfg.Username, cfg.Password = user, password
	return cfg, nil
}

// shuffled is a copy of endpoints in random order. Every host of a fleet is
// configured with the same list; taken in that order by a balancer that
// starts at the first endpoint, the whole fleet's first connections (and
// watches) would pile onto one member or proxy. clientv3 3.7's round-robin
// balancer (grpc-go) happens to rotate its list by a random amount already;
// the shuffle keeps the spread whatever the balancer does.
func shuffled(endpoints []string) []string {
	out := slices.Clone(endpoints)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
