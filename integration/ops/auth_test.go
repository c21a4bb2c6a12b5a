package ops

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshdns/meshdns/integration/harness"
)

// meshdns logs in to an etcd with authentication on, as --etcd-user with
// the password from $MESHDNS_ETCD_PASSWORD (never on the command line).
// Not parallel: the password is passed through the test's environment.
func TestEtcdWithUserAndPassword(t *testing.T) {
	clientPort, peerPort := harness.FreePort(t, false), harness.FreePort(t, false)
	ep := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	e := startEtcd(t, clientPort, peerPort, nil)
	put(t, e, ep, nil, "orgs/acme", `{"network":"fdaa:0:18::/48"}`)
	put(t, e, ep, nil, "machines/acme/web/0a01", `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`)
	enableAuth(t, ep, "root", "s3cret-pw")

	t.Setenv("MESHDNS_ETCD_PASSWORD", "s3cret-pw")
	h := httpAddr(t)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(ep), harness.Args("--default-org", "acme", "--http", h, "--etcd-user", "root"))
	if r := m.Query(t, "web.internal", dns.TypeAAAA, harness.QueryOptions{}); len(r.Answer) != 1 {
		t.Errorf("web.internal with etcd auth: %s %v", harness.Rcode(r), r.Answer)
	}
	readyz(t, h, http.StatusOK, 10*time.Second)
	for _, e := range m.Logs() {
		for k, v := range e {
			if s, ok := v.(string); ok && s == "s3cret-pw" {
				t.Errorf("the password is logged (%s in %q)", k, e.Msg())
			}
		}
	}
}

func enableAuth(t *testing.T, ep, user, password string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.RoleAdd(ctx, "root"); err != nil {
		t.Fatalf("role add root: %v", err)
	}
	if _, err := cli.UserAdd(ctx, user, password); err != nil {
		t.Fatalf("user add: %v", err)
	}
	if _, err := cli.UserGrantRole(ctx, user, "root"); err != nil {
		t.Fatalf("grant root: %v", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatalf("auth enable: %v", err)
	}
}
