package netns

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Programs other than meshctl write etcd too. To write a value past
// meshctl's checks — and to read meshdns's /metrics — inside a namespace,
// the test binary runs itself there (`ip netns exec NS <test binary>`) with
// $MESHDNS_NETNS_RAW set, and TestMain hands over to runRawIfAsked.
const rawEnv = "MESHDNS_NETNS_RAW" // "put <key> <value>" or "get <url>"

// runRawIfAsked does what $MESHDNS_NETNS_RAW says and exits; without it,
// it returns at once.
func runRawIfAsked() {
	what := os.Getenv(rawEnv)
	if what == "" {
		return
	}
	if err := runRaw(what); err != nil {
		fmt.Fprintln(os.Stderr, "raw helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runRaw(what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	op, rest, _ := strings.Cut(what, " ")
	switch op {
	case "put":
		key, value, _ := strings.Cut(rest, " ")
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		resp, err := cli.Put(ctx, key, value)
		if err != nil {
			return err
		}
		fmt.Println(resp.Header.Revision)
		return nil
	case "get":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rest, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	}
	return fmt.Errorf("%s=%q: want put or get", rawEnv, what)
}

// raw runs the helper in ns and returns what it printed.
func raw(t *testing.T, ns, what string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return run(t, "", "ip", "netns", "exec", ns, "env", rawEnv+"="+what, self)
}
