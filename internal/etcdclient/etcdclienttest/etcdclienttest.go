// Package etcdclienttest lets the tests of meshdns and meshctl check that
// both programs build the same etcd client configuration from the same
// canonical flags (internal/etcdclient).
package etcdclienttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/internal/etcdclient"
)

// Password is the password Canonical puts in $MESHDNS_ETCD_PASSWORD.
const Password = "s3cr3t-from-env"

// Canonical writes a CA and a client certificate into a temporary
// directory, sets $MESHDNS_ETCD_PASSWORD (and clears meshctl's old
// variable, so only the canonical one can be the source), and returns
// command-line flags with every canonical etcd flag set.
func Canonical(t *testing.T) []string {
	t.Helper()
	dir := WriteCerts(t)
	t.Setenv(etcdclient.PasswordEnv, Password)
	t.Setenv("MESHCTL_PASSWORD", "")
	return []string{
		"--" + etcdclient.FlagEndpoints, "https://10.0.0.1:2379,https://10.0.0.2:2379,10.0.0.3:2379",
		"--" + etcdclient.FlagPrefix, "/meshdns/test/",
		"--" + etcdclient.FlagCACert, filepath.Join(dir, "ca.pem"),
		"--" + etcdclient.FlagCert, filepath.Join(dir, "client.pem"),
		"--" + etcdclient.FlagKey, filepath.Join(dir, "client-key.pem"),
		"--" + etcdclient.FlagUser, "meshdns",
	}
}

// Want is the configuration the shared builder makes from args (canonical
// flags only), with the default dial timeout.
func Want(t *testing.T, args []string) clientv3.Config {
	t.Helper()
	var s etcdclient.Settings
	fs := pflag.NewFlagSet("want", pflag.ContinueOnError)
	etcdclient.Register(fs, &s, nil, "/meshdns/v1/")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Compare fails t where got differs from want in what reaches etcd: the
// endpoints (as a set: each process shuffles them), the dial timeout, the
// user and password, the trusted CAs and client certificate, and the
// dial options (the reconnect backoff).
func Compare(t *testing.T, got, want clientv3.Config) {
	t.Helper()
	if g, w := slices.Sorted(slices.Values(got.Endpoints)), slices.Sorted(slices.Values(want.Endpoints)); !slices.Equal(g, w) {
		t.Errorf("endpoints %v, want %v", got.Endpoints, want.Endpoints)
	}
	if got.DialTimeout != want.DialTimeout {
		t.Errorf("dial timeout %s, want %s", got.DialTimeout, want.DialTimeout)
	}
	if got.Username != want.Username || got.Password != want.Password {
		t.Errorf("user %q password %q, want %q and %q", got.Username, got.Password, want.Username, want.Password)
	}
	if len(got.DialOptions) != len(want.DialOptions) {
		t.Errorf("%d dial options, want %d", len(got.DialOptions), len(want.DialOptions))
	}
	if (got.TLS == nil) != (want.TLS == nil) {
		t.Fatalf("TLS %v, want %v", got.TLS != nil, want.TLS != nil)
	}
	if got.TLS == nil {
		return
	}
	if !got.TLS.RootCAs.Equal(want.TLS.RootCAs) {
		t.Error("trusted CAs differ")
	}
	if got.TLS.MinVersion != want.TLS.MinVersion {
		t.Errorf("TLS min version %x, want %x", got.TLS.MinVersion, want.TLS.MinVersion)
	}
	if !bytes.Equal(clientCert(t, got.TLS), clientCert(t, want.TLS)) {
		t.Error("client certificates differ")
	}
}

func clientCert(t *testing.T, c *tls.Config) []byte {
	t.Helper()
	if c.GetClientCertificate == nil {
		return nil
	}
	cert, err := c.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || len(cert.Certificate) == 0 {
		t.Fatalf("client certificate: %v", err)
	}
	return cert.Certificate[0]
}

// WriteCerts writes ca.pem, client.pem (CN root) and client-key.pem into
// a temporary directory and returns it.
func WriteCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, clientKey := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clientTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, caTmpl, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("client.pem", "CERTIFICATE", clientDER)
	write("client-key.pem", "EC PRIVATE KEY", keyDER)
	return dir
}
