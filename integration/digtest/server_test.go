package digtest_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/internal/dnstest"
)

// testServer is a tiny authoritative server for "test." on 127.0.0.1, with
// one name per response shape that Parse must handle.
type testServer struct {
	port string
}

// The zone served by testServer, keyed by owner name and type.
var zone = map[string][]string{
	"aaaa.test. AAAA": {
		"aaaa.test. 300 IN AAAA 2001:db8::1",
		"aaaa.test. 300 IN AAAA 2001:db8::2",
	},
	"txt.test. TXT": {
		`txt.test. 60 IN TXT "hello world" "second string" "with \"quotes\""`,
	},
	"soa.test. SOA": {
		"soa.test. 3600 IN SOA ns1.test. hostmaster.test. 2024010101 7200 3600 1209600 300",
	},
}

// bigTXT makes big.test. TXT exceed 512 bytes, to force truncation.
func bigTXT() []string {
	var rrs []string
	for i := range 20 {
		rrs = append(rrs, fmt.Sprintf(`big.test. 60 IN TXT "record %02d padding padding padding padding"`, i))
	}
	return rrs
}

const negativeSOA = "test. 300 IN SOA ns1.test. hostmaster.test. 1 7200 3600 1209600 300"

func startServer(t *testing.T) *testServer {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc("test.", serveTest)
	addr := dnstest.Serve(t, mux, mux)
	_, port, _ := net.SplitHostPort(addr)
	return &testServer{port: port}
}

// args returns dig arguments that query this server.
func (s *testServer) args(extra ...string) []string {
	return append([]string{"@127.0.0.1", "-p", s.port, "+time=2", "+tries=1"}, extra...)
}

func serveTest(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	opt := r.IsEdns0()
	if opt != nil {
		// Answer with our own OPT, as RFC 6891 requires.
		m.SetEdns0(1232, false)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			w.WriteMsg(m)
			return
		}
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	var rrs []string
	if name == "big.test." && q.Qtype == dns.TypeTXT {
		rrs = bigTXT()
	} else {
		rrs = zone[name+" "+dns.TypeToString[q.Qtype]]
	}
	switch {
	case rrs != nil:
		for _, s := range rrs {
			m.Answer = append(m.Answer, dns.RR(must(dns.NewRR(s))))
		}
	case name == "nx.test.":
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, must(dns.NewRR(negativeSOA)))
	default:
		m.Ns = append(m.Ns, must(dns.NewRR(negativeSOA)))
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func must(rr dns.RR, err error) dns.RR {
	if err != nil {
		panic(err)
	}
	return rr
}
