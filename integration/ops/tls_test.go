package ops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/meshdns/meshdns/integration/harness"
)

// meshdns reads a registry from an etcd that demands TLS client
// certificates; without one it never becomes ready.
func TestEtcdWithTLSClientCertificates(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clientPort, peerPort := harness.FreePort(t, false), harness.FreePort(t, false)
	ep := fmt.Sprintf("https://127.0.0.1:%d", clientPort)
	e := startEtcd(t, clientPort, peerPort, &transport.TLSInfo{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, TrustedCAFile: pki.ca, ClientCertAuth: true,
	})
	put(t, e, ep, pki.clientTLS(t), "orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	put(t, e, ep, pki.clientTLS(t), "machines/acme/web/0a01", `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`)

	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--default-org", "acme", "--http", h,
		"--etcd-cacert", pki.ca, "--etcd-cert", pki.clientCert, "--etcd-key", pki.clientKey))
	r := m.Query(t, "web.internal", dns.TypeAAAA, harness.QueryOptions{})
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("web.internal over a TLS registry: %s %v", harness.Rcode(r), r.Answer)
	}
	readyz(t, h, http.StatusOK, 10*time.Second)

	// Only the CA: etcd refuses the connection, nothing loads.
	h2 := httpAddr(t)
	m2 := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--default-org", "acme", "--http", h2,
		"--etcd-cacert", pki.ca), harness.Wait(harness.WaitListening))
	body := readyz(t, h2, http.StatusServiceUnavailable, 5*time.Second)
	// Give it the time the first one needed to load, several times over.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if code, b, err := get(h2, "/readyz"); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz without a client certificate: %d %q %v, want 503", code, b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(body, "registry not loaded yet") {
		t.Errorf("/readyz: %q", body)
	}
	if r := m2.Query(t, "web.internal", dns.TypeAAAA, harness.QueryOptions{}); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("without a client certificate: %s, want SERVFAIL (nothing loaded)", harness.Rcode(r))
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meshdns test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &pki{ca: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("meshdns", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// clientTLS is the test's own client configuration, with the client cert.
func (p *pki) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := (&transport.TLSInfo{CertFile: p.clientCert, KeyFile: p.clientKey, TrustedCAFile: p.ca}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
