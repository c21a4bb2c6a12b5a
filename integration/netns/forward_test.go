package netns

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// inNetns runs f on a thread moved into namespace ns, and moves the thread
// back after. Sockets opened in f stay in ns: that is how the test process
// serves and asks DNS inside the lab without a process of its own there.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it ends with this goroutine
		// instead of running others in the wrong namespace.
		t.Fatalf("setns back from %s: %v", ns, err)
	}
	runtime.UnlockOSThread()
}

// fakeUpstream is a resolver inside the host namespace, on 127.0.0.1:5300
// there, that answers every A question with 192.0.2.1 (owner: the name as
// asked) and the root's NS (the probe), and never answers a name under
// blackhole.example. It counts the questions per lowercased name.
type fakeUpstream struct {
	mu    sync.Mutex
	asked map[string]int
}

const fakeUpstreamAddr = "127.0.0.1:5300"

func startFakeUpstream(t *testing.T, ns string) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{asked: map[string]int{}}
	var pc net.PacketConn
	inNetns(t, ns, func() {
		var err error
		if pc, err = net.ListenPacket("udp", fakeUpstreamAddr); err != nil {
			t.Fatal(err)
		}
	})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if len(req.Question) != 1 {
			return
		}
		q := req.Question[0]
		lower := strings.ToLower(q.Name)
		u.mu.Lock()
		u.asked[lower]++
		u.mu.Unlock()
		if strings.HasSuffix(lower, ".blackhole.example.") {
			return
		}
		r := new(dns.Msg)
		r.SetReply(req)
		r.RecursionAvailable = true
		var rr dns.RR
		switch q.Qtype {
		case dns.TypeA:
			rr = &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)}
		case dns.TypeNS:
			rr = &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "a.root-servers.net."}
		}
		if rr != nil {
			r.Answer = []dns.RR{rr}
		}
		_ = w.WriteMsg(r)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return u
}

func (u *fakeUpstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[strings.ToLower(name)]
}

// Hostile tenants, issue #10 item 4: one org's forwarding cannot hurt or
// inform another's. Org alpha asks names the upstream never answers, 100 a
// second for 10 s (before, its timeouts made the upstream dead for everyone:
// beta's lookups failed with SERVFAIL); meanwhile every one of beta's 30
// lookups is answered. And beta asking a name alpha asked goes to the
// upstream itself (before, it got alpha's cached answer, counted down, in
// alpha's letter case).
func TestOneOrgsForwardingCannotHurtOrInformAnother(t *testing.T) {
	l := newOrgLabArgs(t, []string{"--upstream", fakeUpstreamAddr, "--forward-timeout", "2s"})
	up := startFakeUpstream(t, l.host.ns)

	// A name alpha looks up, then beta in other letters.
	ra, err := dig(l.syd.ns, "-b", l.syd.src, "@fdaa::3", "A", "Shared.Example.COM")
	if err != nil {
		t.Fatal(err)
	}
	if ra.Status != "NOERROR" || len(ra.Answer) != 1 || ra.Answer[0].Header().Name != "Shared.Example.COM." {
		t.Fatalf("alpha's lookup: %s %v", ra.Status, ra.Answer)
	}
	rb, err := dig(l.b.ns, "-b", l.b.src, "@fdaa::3", "A", "sHARED.eXAMPLE.com")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Status != "NOERROR" || len(rb.Answer) != 1 {
		t.Fatalf("beta's lookup: %s %v", rb.Status, rb.Answer)
	}
	if n := up.count("shared.example.com."); n != 2 {
		t.Errorf("the upstream was asked %d times for shared.example.com, want 2: beta got alpha's cached answer", n)
	}
	if owner := rb.Answer[0].Header().Name; owner != "sHARED.eXAMPLE.com." {
		t.Errorf("beta's answer is owned by %s, want beta's own case sHARED.eXAMPLE.com.", owner)
	}
	if ttl := rb.Answer[0].Header().Ttl; ttl != 300 {
		t.Errorf("beta's answer has TTL %d, want the upstream's fresh 300", ttl)
	}

	// alpha's flood of never-answered names, from its own source address.
	var conn *net.UDPConn
	inNetns(t, l.syd.ns, func() {
		var err error
		conn, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(l.syd.src)}, &net.UDPAddr{IP: net.ParseIP("fdaa::3"), Port: 53})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	const floodFor, rate = 10 * time.Second, 100
	var sent, servfail atomic.Int32
	go func() { // replies: SERVFAIL after the forward timeout
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) == nil && m.Rcode == dns.RcodeServerFailure {
				servfail.Add(1)
			}
		}
	}()
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		// Paced by the clock, catching up after a hiccup of a loaded
		// machine: i questions by the time i/rate has passed.
		start, total := time.Now(), int(floodFor.Seconds()*rate)
		for i := 0; i < total; {
			due := min(total, int(time.Since(start).Seconds()*rate)+1)
			for ; i < due; i++ {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("n%d.blackhole.example.", i), dns.TypeA)
				raw, err := m.Pack()
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := conn.Write(raw); err != nil {
					t.Errorf("alpha's query %d: %v", i, err)
					return
				}
				sent.Add(1)
			}
			time.Sleep(time.Second / rate)
		}
	}()

	// beta's lookups over the same 10 s, real dig, names never asked before.
	const lookups = 30
	var failed []string
	for i := range lookups {
		time.Sleep(floodFor / lookups)
		name := fmt.Sprintf("b%d.example.com", i)
		r, err := dig(l.b.ns, "-b", l.b.src, "@fdaa::3", "A", name)
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		case r.Status != "NOERROR" || len(r.Answer) != 1:
			failed = append(failed, fmt.Sprintf("%s: %s %v", name, r.Status, r.Answer))
		}
	}
	<-floodDone
	t.Logf("alpha sent %d never-answered questions (%d SERVFAIL so far); the upstream was probed %d times",
		sent.Load(), servfail.Load(), up.count("."))
	if n := int(sent.Load()); n != int(floodFor.Seconds()*rate) {
		t.Errorf("alpha sent %d questions, want %d", n, int(floodFor.Seconds()*rate))
	}
	if up.count("n5.blackhole.example.") == 0 {
		t.Error("alpha's questions never reached the upstream")
	}
	if len(failed) > 0 {
		t.Errorf("%d of beta's %d lookups failed during alpha's flood:\n%s", len(failed), lookups, strings.Join(failed, "\n"))
	}
}
