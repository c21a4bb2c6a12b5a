package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/registry"
	"github.com/meshdns/meshdns/zones"
)

// One pipeline for UDP and TCP (issue #11 item 1): the same question gets
// the same answer and is counted the same way over both transports.

// infoObserver records what it is told, per transport.
type infoObserver struct {
	mu    sync.Mutex
	infos map[Transport][]string
}

func (o *infoObserver) ObserveQuery(q QueryInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.infos == nil {
		o.infos = map[Transport][]string{}
	}
	// Everything a metric is made of, but the transport, the worker and
	// the size.
	o.infos[q.Transport] = append(o.infos[q.Transport], fmt.Sprintf("%s %s %s org=%q cached=%v fwd=%v failopen=%v cut=%v",
		q.Name, dns.TypeToString[q.Qtype], dns.RcodeToString[q.Rcode], q.Org, q.Cached, q.Forwarded, q.FailOpen, q.ListCut))
}

func (o *infoObserver) take(tr Transport) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.infos[tr]
	delete(o.infos, tr)
	return out
}

// startPipelineServer serves testRegistry on 127.0.0.1 (asking as acme)
// with one UDP socket and reader, so a repeated UDP query meets the same
// answer cache, as a repeated TCP one does.
func startPipelineServer(t *testing.T, obs Observer) *Server {
	t.Helper()
	st := registry.NewStore(registry.DefaultPrefix)
	evs, err := registry.ParseText(registry.DefaultPrefix, testRegistry(0))
	if err != nil {
		t.Fatal(err)
	}
	st.Replace(int64(len(evs)), evs)
	s := New(Config{Listen: []string{"127.0.0.1:0"}, DefaultOrg: "acme", UDPSockets: 1, UDPWorkers: 1, Observer: obs,
		Zones: zones.Config{TTL: 5, NegTTL: 5, ServerRegion: "ams"}}, st)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// rawRR is a record in wire form owned by the root.
func rawRR(rrtype uint16, rdata []byte) []byte {
	b := []byte{0}
	b = binary.BigEndian.AppendUint16(b, rrtype)
	b = binary.BigEndian.AppendUint16(b, dns.ClassINET)
	b = append(b, 0, 0, 0, 60)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

// rawOPTWith is an OPT record (UDP size 1232, version 0) with the given
// option bytes as its RDATA.
func rawOPTWith(options []byte) []byte {
	b := []byte{0}
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, 1232)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(options)))
	return append(b, options...)
}

// pipelineQueries are normal queries of every name kind and odd ones,
// including those issue #11 found answered differently over UDP and TCP.
func pipelineQueries() []corner {
	plain := func(name string, qtype uint16) func(t testing.TB) []byte {
		return func(t testing.TB) []byte { return pack(t, query(name, qtype)) }
	}
	edns := func(name string, qtype uint16) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			m := query(name, qtype)
			m.SetEdns0(1232, true)
			return pack(t, m)
		}
	}
	qs := []corner{
		{name: "app AAAA", raw: plain("web.internal.", dns.TypeAAAA)},
		{name: "app AAAA mixed case with EDNS", raw: edns("WeB.InTeRnAl.", dns.TypeAAAA)},
		{name: "app A (no data)", raw: plain("web.internal.", dns.TypeA)},
		{name: "global app", raw: plain("global.web.internal.", dns.TypeAAAA)},
		{name: "region of app", raw: plain("ams.web.internal.", dns.TypeAAAA)},
		{name: "machine", raw: plain("0a01.vm.web.internal.", dns.TypeAAAA)},
		{name: "vm empty non-terminal", raw: plain("vm.web.internal.", dns.TypeAAAA)},
		{name: "top1", raw: plain("top1.nearest.of.web.internal.", dns.TypeAAAA)},
		{name: "vms list", raw: edns("vms.web.internal.", dns.TypeTXT)},
		{name: "regions list", raw: plain("regions.web.internal.", dns.TypeTXT)},
		{name: "_apps", raw: plain("_apps.internal.", dns.TypeTXT)},
		{name: "_instances", raw: edns("_instances.internal.", dns.TypeTXT)},
		{name: "_api", raw: plain("_api.internal.", dns.TypeAAAA)},
		{name: "_peer", raw: plain("_peer.internal.", dns.TypeTXT)},
		{name: "_whoami", raw: plain("_whoami.internal.", dns.TypeTXT)},
		{name: "apex SOA", raw: plain("internal.", dns.TypeSOA)},
		{name: "apex NS", raw: plain("internal.", dns.TypeNS)},
		{name: "flycast", raw: plain("web.flycast.", dns.TypeAAAA)},
		{name: "nxdomain", raw: edns("nosuch.internal.", dns.TypeAAAA)},
		{name: "another org's app", raw: plain("secret.internal.", dns.TypeAAAA)},
		{name: "reverse PTR", raw: plain("2.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", dns.TypePTR)},
		{name: "outside the zones (refused)", raw: plain("example.com.", dns.TypeA)},
		{name: "ANY", raw: plain("web.internal.", dns.TypeANY)},
		{name: "class CH", raw: func(t testing.TB) []byte {
			m := query("web.internal.", dns.TypeAAAA)
			m.Question[0].Qclass = dns.ClassCHAOS
			return pack(t, m)
		}},
		{name: "OPT plus two extra additional records", raw: func(t testing.TB) []byte {
			return withRawAdditional(t, cornerQuery(), rawOPT([]byte{0}), rawRR(dns.TypeA, []byte{1, 2, 3, 4}), rawRR(dns.TypeA, []byte{5, 6, 7, 8}))
		}},
		{name: "ECS with source prefix 200", raw: func(t testing.TB) []byte {
			opt := binary.BigEndian.AppendUint16(nil, dns.EDNS0SUBNET)
			opt = binary.BigEndian.AppendUint16(opt, 8)
			opt = append(opt, 0, 1, 200, 0, 10, 0, 0, 1)
			return withRawAdditional(t, cornerQuery(), rawOPTWith(opt))
		}},
		{name: "cut-short EDNS option", raw: func(t testing.TB) []byte {
			opt := binary.BigEndian.AppendUint16(nil, 65001)
			opt = binary.BigEndian.AppendUint16(opt, 10)
			opt = append(opt, 1, 2)
			return withRawAdditional(t, cornerQuery(), rawOPTWith(opt))
		}},
		{name: "unknown EDNS option", raw: func(t testing.TB) []byte {
			opt := binary.BigEndian.AppendUint16(nil, 65001)
			opt = binary.BigEndian.AppendUint16(opt, 2)
			opt = append(opt, 1, 2)
			return withRawAdditional(t, cornerQuery(), rawOPTWith(opt))
		}},
	}
	for _, c := range corners() {
		qs = append(qs, corner{name: c.name, raw: c.raw})
	}
	// Every opcode, with EDNS: QUERY answers, the rest get NOTIMP (or
	// FORMERR), the same way over both transports.
	for op := 1; op < 16; op++ {
		qs = append(qs, corner{name: "opcode " + strconv.Itoa(op), raw: func(t testing.TB) []byte {
			m := query("web.internal.", dns.TypeAAAA)
			m.Opcode = op
			m.SetEdns0(1232, false)
			return pack(t, m)
		}})
	}
	return qs
}

// comparable is a reply with what may differ between transports cleared:
// the TC bit. Sizes (and so TC) stay apart as no answer here comes near
// 512 bytes.
func comparable(r *dns.Msg) string {
	r.Truncated = false
	return r.String()
}

func TestSameAnswersOverUDPAndTCP(t *testing.T) {
	obs := &infoObserver{}
	s := startPipelineServer(t, obs)
	addr := s.Addrs()[0].String()
	for _, q := range pipelineQueries() {
		t.Run(q.name, func(t *testing.T) {
			raw := q.raw(t)
			var got [2][]string
			for i, nw := range []string{"udp", "tcp"} {
				// Twice: the second one meets the answer cache when it may.
				for range 2 {
					r := askRaw(t, nw, addr, raw)
					if r.Truncated {
						t.Fatalf("%s reply truncated; the test wants replies that fit 512 bytes", nw)
					}
					got[i] = append(got[i], comparable(r))
				}
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("replies differ\nUDP:\n%s\nTCP:\n%s", got[0], got[1])
			}
			// The observer is told after the reply is made, maybe after it
			// was sent: wait a moment for the counts.
			var udp, tcp []string
			for deadline := time.Now().Add(2 * time.Second); ; {
				time.Sleep(5 * time.Millisecond)
				udp, tcp = append(udp, obs.take(UDP)...), append(tcp, obs.take(TCP)...)
				if len(udp) == len(tcp) && len(udp) >= 2 || time.Now().After(deadline) {
					break
				}
			}
			if !slices.Equal(udp, tcp) {
				t.Errorf("counted differently\nUDP: %q\nTCP: %q", udp, tcp)
			}
		})
	}
}

// TestTCPAnswersFromTheCache: a repeated TCP question is answered from the
// answer cache, on the same connection and on a new one, and the cached
// answer is the one the general path gives over TCP (TC clear, all
// records), not a UDP one.
func TestTCPAnswersFromTheCache(t *testing.T) {
	obs := &infoObserver{}
	s := newTestServer(t, testRegistry(200), "acme")
	cfg := *s.cfg.Load()
	cfg.Observer = obs
	s.Reconfigure(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := s.Addrs()[0].String()
	raw := pack(t, query("big.internal.", dns.TypeAAAA))
	// Over UDP first: the 512-byte answer with TC must not be served
	// over TCP.
	if r := askRaw(t, "udp", addr, raw); !r.Truncated {
		t.Fatalf("UDP answer for 200 machines not truncated: %d records", len(r.Answer))
	}
	for i := range 3 {
		r := askRaw(t, "tcp", addr, raw)
		if r.Truncated || len(r.Answer) != 200 {
			t.Fatalf("TCP answer %d: tc=%v, %d records, want all 200", i, r.Truncated, len(r.Answer))
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		writeTCP(t, c, raw)
		if r := readTCP(t, c); len(r.Answer) != 200 {
			t.Fatalf("%d records on a kept connection", len(r.Answer))
		}
	}
	time.Sleep(50 * time.Millisecond)
	var cached []bool
	for _, l := range obs.take(TCP) {
		cached = append(cached, slices.Contains([]string{"cached=true"}, fieldOf(l, "cached=")))
	}
	if want := []bool{false, true, true, true, true}; !slices.Equal(cached, want) {
		t.Fatalf("TCP answers cached %v, want %v", cached, want)
	}
}

// fieldOf returns the space-separated field of s starting with prefix.
func fieldOf(s, prefix string) string {
	for _, f := range splitFields(s) {
		if len(f) >= len(prefix) && f[:len(prefix)] == prefix {
			return f
		}
	}
	return ""
}

func splitFields(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func writeTCP(t *testing.T, c net.Conn, raws ...[]byte) {
	t.Helper()
	var b []byte
	for _, raw := range raws {
		b = binary.BigEndian.AppendUint16(b, uint16(len(raw)))
		b = append(b, raw...)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readTCP(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := readFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := readFull(c, buf); err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return r
}

// TestTCPPipelining writes many queries in one write on one connection,
// the last one cut in two writes, and expects every answer, in order.
func TestTCPPipelining(t *testing.T) {
	s := startPipelineServer(t, nil)
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := []string{"web.internal.", "nosuch.internal.", "_apps.internal.", "example.com.", "0a02.vm.web.internal."}
	want := []int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeSuccess, dns.RcodeRefused, dns.RcodeSuccess}
	var raws [][]byte
	for i := range 300 {
		m := query(names[i%len(names)], dns.TypeAAAA)
		m.Id = uint16(i + 1)
		raws = append(raws, pack(t, m))
	}
	writeTCP(t, c, raws[:len(raws)-1]...)
	last := binary.BigEndian.AppendUint16(nil, uint16(len(raws[len(raws)-1])))
	last = append(last, raws[len(raws)-1]...)
	if _, err := c.Write(last[:5]); err != nil {
		t.Fatal(err)
	}
	for i := range raws {
		if i == len(raws)-10 {
			if _, err := c.Write(last[5:]); err != nil {
				t.Fatal(err)
			}
		}
		r := readTCP(t, c)
		if int(r.Id) != i+1 || r.Rcode != want[i%len(want)] || len(r.Question) != 1 || r.Question[0].Name != names[i%len(names)] {
			t.Fatalf("answer %d: id %d rcode %s question %v, want id %d %s for %s", i, r.Id, dns.RcodeToString[r.Rcode], r.Question, i+1, dns.RcodeToString[want[i%len(want)]], names[i%len(names)])
		}
	}
}
