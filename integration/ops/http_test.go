package ops

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/integration/harness"
)

// httpAddr is a free loopback address for meshdns's --http.
func httpAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t, false))
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches http://addr/path and returns the status and body; err is
// set when nothing answered.
func get(addr, path string) (int, string, error) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// series is one scraped sample: metric name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads /metrics in Prometheus's text format.
func scrape(t *testing.T, addr string) []series {
	t.Helper()
	code, body, err := get(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics at %s: %d %v", addr, code, err)
	}
	var out []series
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		s := series{labels: map[string]string{}, value: v}
		head := line[:sp]
		if i := strings.IndexByte(head, '{'); i >= 0 {
			s.name = head[:i]
			// Label values here never hold commas or quotes.
			for _, kv := range strings.Split(strings.TrimSuffix(head[i+1:], "}"), ",") {
				k, v, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(v, `"`)
			}
		} else {
			s.name = head
		}
		out = append(out, s)
	}
	return out
}

// value sums the samples of name whose labels include every "k=v" given
// (0 when there are none).
func value(ss []series, name string, labels ...string) float64 {
	var sum float64
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

// readyz polls /readyz until its status is want, and returns the body.
func readyz(t *testing.T, addr string, want int, timeout time.Duration) string {
	t.Helper()
	var body string
	harness.Poll(t, timeout, 50*time.Millisecond, fmt.Sprintf("/readyz %d", want), func() (bool, string) {
		code, b, err := get(addr, "/readyz")
		if err != nil {
			return false, err.Error()
		}
		body = b
		return code == want, fmt.Sprintf("%d %q", code, b)
	})
	return body
}
