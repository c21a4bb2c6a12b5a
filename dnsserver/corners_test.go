package dnsserver

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/zones"
)

// Protocol corners (issue #12 item 4), each asked over real UDP (the
// readers' fast path, which hands these to the general path) and real TCP.

// cornerQuery is a query for web.internal. AAAA with RD and CD set.
func cornerQuery() *dns.Msg {
	m := query("web.internal.", dns.TypeAAAA)
	m.RecursionDesired = true
	m.CheckingDisabled = true
	return m
}

// withTSIG adds a TSIG record (key "tsig-key.", hmac-sha256) to m, signed
// with a key meshdns cannot know: any MAC will do.
func withTSIG(m *dns.Msg) *dns.Msg {
	m.Extra = append(m.Extra, &dns.TSIG{
		Hdr:        dns.RR_Header{Name: "tsig-key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  dns.HmacSHA256,
		TimeSigned: 1700000000,
		Fudge:      300,
		MACSize:    32,
		MAC:        "0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10",
		OrigId:     m.Id,
	})
	return m
}

// rawOPT is an OPT record in wire form: owner (a wire name), UDP size 1232,
// version 0, no options.
func rawOPT(owner []byte) []byte {
	b := append([]byte(nil), owner...)
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, 1232)
	b = append(b, 0, 0, 0, 0) // ext-rcode, version, flags
	return binary.BigEndian.AppendUint16(b, 0)
}

// withRawAdditional appends wire records to a packed query and sets ARCOUNT.
func withRawAdditional(t testing.TB, m *dns.Msg, rrs ...[]byte) []byte {
	raw := pack(t, m)
	for _, rr := range rrs {
		raw = append(raw, rr...)
	}
	binary.BigEndian.PutUint16(raw[10:12], uint16(len(rrs)))
	return raw
}

type corner struct {
	name  string
	raw   func(t testing.TB) []byte
	rcode int
	check func(t *testing.T, r *dns.Msg)
}

// hasQuestion checks that the reply repeats the question.
func hasQuestion(name string, qtype uint16) func(t *testing.T, r *dns.Msg) {
	return func(t *testing.T, r *dns.Msg) {
		t.Helper()
		if len(r.Question) != 1 || r.Question[0].Name != name || r.Question[0].Qtype != qtype {
			t.Fatalf("question %v, want %s %s", r.Question, name, dns.TypeToString[qtype])
		}
	}
}

// hasOPT checks that the reply has exactly one OPT, version 0.
func hasOPT(t *testing.T, r *dns.Msg) {
	t.Helper()
	n := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	if opt := r.IsEdns0(); n != 1 || opt.Version() != 0 || opt.Hdr.Name != "." {
		t.Fatalf("reply has %d OPT records (%v), want one of version 0", n, r.Extra)
	}
}

func all(checks ...func(t *testing.T, r *dns.Msg)) func(t *testing.T, r *dns.Msg) {
	return func(t *testing.T, r *dns.Msg) {
		t.Helper()
		for _, c := range checks {
			c(t, r)
		}
	}
}

func corners() []corner {
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "internal.", Rrtype: dns.TypeSOA, Class: dns.ClassINET},
		Ns: "ns.internal.", Mbox: "hostmaster.internal.", Serial: 7, Refresh: 1, Retry: 1, Expire: 1, Minttl: 1}
	return []corner{
		{"ixfr with the client's SOA in the authority section is refused", func(t testing.TB) []byte {
			m := query("internal.", dns.TypeIXFR)
			m.Ns = []dns.RR{soa}
			return pack(t, m)
		}, dns.RcodeRefused, hasQuestion("internal.", dns.TypeIXFR)},
		{"ixfr without authority is refused", func(t testing.TB) []byte {
			return pack(t, query("internal.", dns.TypeIXFR))
		}, dns.RcodeRefused, hasQuestion("internal.", dns.TypeIXFR)},
		{"ixfr with EDNS and the client's SOA is refused with an OPT", func(t testing.TB) []byte {
			m := query("internal.", dns.TypeIXFR)
			m.Ns = []dns.RR{soa}
			m.SetEdns0(1232, false)
			return pack(t, m)
		}, dns.RcodeRefused, all(hasQuestion("internal.", dns.TypeIXFR), hasOPT)},
		{"ixfr with a non-SOA authority record is formerr", func(t testing.TB) []byte {
			m := query("internal.", dns.TypeIXFR)
			m.Ns = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: "internal.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: net.ParseIP("fdaa::1")}}
			return pack(t, m)
		}, dns.RcodeFormatError, hasQuestion("internal.", dns.TypeIXFR)},
		{"unknown opcode: notimp with question and OPT, RD and CD clear", func(t testing.TB) []byte {
			m := cornerQuery()
			m.Opcode = 3 // unassigned
			m.SetEdns0(1232, false)
			return pack(t, m)
		}, dns.RcodeNotImplemented, all(hasQuestion("web.internal.", dns.TypeAAAA), hasOPT, func(t *testing.T, r *dns.Msg) {
			if r.RecursionDesired || r.CheckingDisabled || r.Opcode != 3 {
				t.Fatalf("rd=%v cd=%v opcode=%d, want RD and CD clear, opcode 3", r.RecursionDesired, r.CheckingDisabled, r.Opcode)
			}
		})},
		{"notify: notimp with question, RD clear", func(t testing.TB) []byte {
			m := cornerQuery()
			m.Opcode = dns.OpcodeNotify
			return pack(t, m)
		}, dns.RcodeNotImplemented, all(hasQuestion("web.internal.", dns.TypeAAAA), func(t *testing.T, r *dns.Msg) {
			if r.RecursionDesired || r.CheckingDisabled || r.IsEdns0() != nil {
				t.Fatalf("rd=%v cd=%v opt=%v, want RD, CD and OPT absent", r.RecursionDesired, r.CheckingDisabled, r.IsEdns0())
			}
		})},
		{"two questions: formerr with OPT", func(t testing.TB) []byte {
			m := cornerQuery()
			m.Question = append(m.Question, m.Question[0])
			m.SetEdns0(1232, false)
			return pack(t, m)
		}, dns.RcodeFormatError, all(hasOPT, func(t *testing.T, r *dns.Msg) {
			if !r.RecursionDesired || !r.CheckingDisabled {
				t.Fatal("RD and CD of a QUERY not copied")
			}
		})},
		{"unparseable additional record: formerr keeps the question", func(t testing.TB) []byte {
			raw := pack(t, cornerQuery())
			binary.BigEndian.PutUint16(raw[10:12], 1)
			return append(raw, 0, 0, 1) // a record cut short
		}, dns.RcodeFormatError, hasQuestion("web.internal.", dns.TypeAAAA)},
		{"two OPT records: formerr with one OPT", func(t testing.TB) []byte {
			return withRawAdditional(t, cornerQuery(), rawOPT([]byte{0}), rawOPT([]byte{0}))
		}, dns.RcodeFormatError, all(hasQuestion("web.internal.", dns.TypeAAAA), hasOPT)},
		{"OPT owned by a non-root name: formerr with OPT", func(t testing.TB) []byte {
			return withRawAdditional(t, cornerQuery(), rawOPT([]byte("\x03web\x08internal\x00")))
		}, dns.RcodeFormatError, all(hasQuestion("web.internal.", dns.TypeAAAA), hasOPT)},
		{"EDNS version 1: badvers with OPT and question", func(t testing.TB) []byte {
			m := cornerQuery()
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return pack(t, m)
		}, dns.RcodeBadVers, all(hasQuestion("web.internal.", dns.TypeAAAA), hasOPT)},
		{"TSIG with an unknown key: notauth, BADKEY", func(t testing.TB) []byte {
			return pack(t, withTSIG(cornerQuery()))
		}, dns.RcodeNotAuth, all(hasQuestion("web.internal.", dns.TypeAAAA), badKeyTSIG)},
		{"TSIG after an OPT: notauth, BADKEY after our OPT", func(t testing.TB) []byte {
			m := cornerQuery()
			m.SetEdns0(1232, false)
			return pack(t, withTSIG(m))
		}, dns.RcodeNotAuth, all(hasQuestion("web.internal.", dns.TypeAAAA), hasOPT, badKeyTSIG)},
		{"TSIG on an update: notauth, BADKEY", func(t testing.TB) []byte {
			m := new(dns.Msg)
			m.SetUpdate("internal.")
			return pack(t, withTSIG(m))
		}, dns.RcodeNotAuth, badKeyTSIG},
		{"TSIG for a name outside the zone: notauth, BADKEY", func(t testing.TB) []byte {
			return pack(t, withTSIG(query("example.com.", dns.TypeA)))
		}, dns.RcodeNotAuth, badKeyTSIG},
		{"TSIG without RDATA: formerr", func(t testing.TB) []byte {
			return withRawAdditional(t, cornerQuery(), []byte("\x08tsig-key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x00"))
		}, dns.RcodeFormatError, hasQuestion("web.internal.", dns.TypeAAAA)},
		{"TSIG not last: formerr", func(t testing.TB) []byte {
			m := withTSIG(cornerQuery())
			m.SetEdns0(1232, false) // the OPT goes after the TSIG
			return pack(t, m)
		}, dns.RcodeFormatError, all(hasQuestion("web.internal.", dns.TypeAAAA), func(t *testing.T, r *dns.Msg) {
			if r.IsTsig() != nil {
				t.Fatal("TSIG in a FORMERR reply")
			}
		})},
	}
}

// badKeyTSIG checks the reply's TSIG: last, echoing withTSIG's key name,
// algorithm, time and fudge, error BADKEY, no MAC, and no answer.
func badKeyTSIG(t *testing.T, r *dns.Msg) {
	t.Helper()
	ts := r.IsTsig()
	if ts == nil {
		t.Fatalf("no TSIG last in the reply: %v", r.Extra)
	}
	if ts.Hdr.Name != "tsig-key." || ts.Hdr.Class != dns.ClassANY || ts.Algorithm != dns.HmacSHA256 ||
		ts.Error != dns.RcodeBadKey || ts.MACSize != 0 || ts.MAC != "" || ts.TimeSigned != 1700000000 ||
		ts.Fudge != 300 || ts.OrigId != r.Id || ts.OtherLen != 0 {
		t.Fatalf("TSIG %v, want BADKEY echoing the query's key, algorithm and time, empty MAC", ts)
	}
	if len(r.Answer) != 0 || r.Authoritative {
		t.Fatalf("answer %v aa=%v to a query signed with an unknown key", r.Answer, r.Authoritative)
	}
}

func TestProtocolCorners(t *testing.T) {
	s := newTestServer(t, testRegistry(0), "acme") // 127.0.0.1 asks as acme
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := s.Addrs()[0].String()
	for _, tc := range corners() {
		for _, nw := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+nw, func(t *testing.T) {
				raw := tc.raw(t)
				id := binary.BigEndian.Uint16(raw)
				r := askRaw(t, nw, addr, raw)
				if r.Id != id || !r.Response || r.Rcode != tc.rcode {
					t.Fatalf("got id %d qr=%v rcode %s, want id %d, %s:\n%v", r.Id, r.Response, dns.RcodeToString[r.Rcode], id, dns.RcodeToString[tc.rcode], r)
				}
				tc.check(t, r)
			})
		}
	}
}

// askRaw sends raw to addr over nw ("udp" or "tcp") and reads the reply,
// within 5 s.
func askRaw(t *testing.T, nw, addr string, raw []byte) *dns.Msg {
	t.Helper()
	c, err := net.DialTimeout(nw, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	var n int
	if nw == "tcp" {
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(raw)))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		var l [2]byte
		if _, err := readFull(c, l[:]); err != nil {
			t.Fatal(err)
		}
		n, err = readFull(c, buf[:binary.BigEndian.Uint16(l[:])])
	} else {
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		n, err = c.Read(buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return r
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// cutObserver records the ListCut flag of each answer.
type cutObserver struct {
	mu  sync.Mutex
	cut []bool
}

func (o *cutObserver) ObserveQuery(q QueryInfo) {
	o.mu.Lock()
	o.cut = append(o.cut, q.ListCut)
	o.mu.Unlock()
}

func (o *cutObserver) take() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.cut
	o.cut = nil
	return c
}

// cutWorker is a worker of a server with a 3,000-machine app, 64 KiB UDP
// answers and an observer of the cut flag.
func cutWorker(t *testing.T) (*worker, *cutObserver) {
	s := newTestServer(t, testRegistry(3000), "")
	obs := &cutObserver{}
	cfg := *s.cfg.Load()
	cfg.Observer = obs
	cfg.UDPSize = 65535
	s.Reconfigure(cfg)
	return s.newWorker(), obs
}

// TestListCutReported: a TXT list over zones.MaxListText is reported cut
// (QueryInfo.ListCut) whenever the cut list goes out — computed, from a
// UDP worker's cache, over TCP — and not when a UDP reply had no room for
// it (TC, the client comes back over TCP) or the list is whole.
func TestListCutReported(t *testing.T) {
	w, obs := cutWorker(t)
	for _, tc := range []struct {
		name string
		edns uint16
		tr   Transport
		cut  bool
	}{
		{"_instances.internal.", 0, TCP, true},
		{"all._instances.internal.", 65535, UDP, true},
		{"_instances.internal.", 1232, UDP, false}, // TC: the list did not go out
		{"vms.big.internal.", 0, TCP, false},       // 3000 × "xxxx ams," fits
		{"vms.web.internal.", 65535, UDP, false},
	} {
		m := query(tc.name, dns.TypeTXT)
		if tc.edns != 0 {
			m.SetEdns0(tc.edns, false)
		}
		raw := pack(t, m)
		var n int
		if tc.tr == TCP {
			w.s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: TCP})
			n = 1
		} else {
			w.handle(raw, acmeSrc, netip.Addr{})
			w.handle(raw, acmeSrc, netip.Addr{}) // from the cache
			n = 2
		}
		got := obs.take()
		if len(got) != n {
			t.Fatalf("%s over %s: %d observations, want %d", tc.name, tc.tr, len(got), n)
		}
		for _, c := range got {
			if c != tc.cut {
				t.Fatalf("%s over %s (EDNS %d): ListCut %v, want %v", tc.name, tc.tr, tc.edns, c, tc.cut)
			}
		}
	}
}

// TestDigCorners asks the real dig: a query signed with a key meshdns
// cannot know gets NOTAUTH with a BADKEY TSIG (dig: "tsig indicates
// error"), over UDP and TCP; an unknown opcode gets NOTIMP that repeats
// the question and carries an OPT.
func TestDigCorners(t *testing.T) {
	dig := etcdtest.RequireTool(t, "dig")
	s := newTestServer(t, testRegistry(0), "acme")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	port := strconv.Itoa(s.Addrs()[0].(*net.UDPAddr).Port)
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"@127.0.0.1", "-p", port, "+tries=1", "+time=2"}, args...)
		out, err := digtest.Again(t, func() (string, error) {
			out, err := exec.Command(dig, args...).CombinedOutput()
			return string(out), err
		})
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	for _, tr := range []string{"+notcp", "+tcp"} {
		out := run(tr, "-y", "hmac-sha256:unknown-key:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "web.internal", "AAAA")
		for _, want := range []string{"status: NOTAUTH", "ANSWER: 0", "tsig indicates error", "unknown-key.", "hmac-sha256.", "BADKEY"} {
			if !strings.Contains(out, want) {
				t.Fatalf("dig %s -y: no %q in\n%s", tr, want, out)
			}
		}
		out = run(tr, "+opcode=3", "web.internal", "AAAA")
		for _, want := range []string{"status: NOTIMP", "QUERY: 1", "EDNS: version: 0", ";web.internal.\t\t\tIN\tAAAA"} {
			if !strings.Contains(out, want) {
				t.Fatalf("dig %s +opcode=3: no %q in\n%s", tr, want, out)
			}
		}
	}
}

// TestRecordCutReported: an AAAA answer cut to zones.MaxAnswer bytes (3,000
// machines take ~84 KB) is reported cut, over TCP and over UDP with a 64 KiB
// buffer, and the reply takes at most zones.MaxAnswer bytes with no TC; a
// UDP reply cut by the client's size is TC, not a cut answer.
func TestRecordCutReported(t *testing.T) {
	w, obs := cutWorker(t)
	for _, tc := range []struct {
		edns uint16
		tr   Transport
		cut  bool
	}{
		{0, TCP, true},
		{65535, UDP, true},
		{1232, UDP, false}, // TC
	} {
		m := query("big.internal.", dns.TypeAAAA)
		if tc.edns != 0 {
			m.SetEdns0(tc.edns, false)
		}
		raw := pack(t, m)
		var outs [][]byte
		if tc.tr == TCP {
			outs = append(outs, w.s.HandlePacket(Query{Raw: raw, Src: acmeSrc, Transport: TCP}))
		} else {
			outs = append(outs, append([]byte(nil), w.handle(raw, acmeSrc, netip.Addr{})...))
			outs = append(outs, append([]byte(nil), w.handle(raw, acmeSrc, netip.Addr{})...)) // from the cache
		}
		got := obs.take()
		if len(got) != len(outs) {
			t.Fatalf("over %s: %d observations, want %d", tc.tr, len(got), len(outs))
		}
		for i, out := range outs {
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if got[i] != tc.cut || len(out) > zones.MaxAnswer || r.Truncated == tc.cut || len(r.Answer) == 0 {
				t.Fatalf("over %s (EDNS %d): ListCut %v, %d bytes, TC %v, %d records; want ListCut %v, at most %d bytes",
					tc.tr, tc.edns, got[i], len(out), r.Truncated, len(r.Answer), tc.cut, zones.MaxAnswer)
			}
		}
	}
}
