package faults

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

const (
	// floodFor is how long each flood lasts.
	floodFor = 5 * time.Second
	// floodSockets is how many sockets (each with a sending and a reading
	// goroutine) the flood uses, all from 127.0.0.1.
	floodSockets = 4
	// slowEvery is the slow askers' pace: 50 queries a second each.
	slowEvery = 20 * time.Millisecond
	// slowLossAllowed is how many of a slow asker's ~250 queries may go
	// unanswered under the default rate limit: none (see TestFlood).
	slowLossAllowed = 0
	// othersCPUAllowed is how much CPU (in cores) processes other than
	// meshdns and the flooder may take during a flood before the strict
	// check's premise, a core for meshdns, counts as broken. On a quiet
	// machine they take 0.13–0.16 (the kernel's packet work not charged to
	// a process, other daemons).
	othersCPUAllowed = 0.3
	// maxRSS bounds meshdns's memory under the flood.
	maxRSSKiB = 300 << 10
)

// TestFlood floods meshdns from one source (127.0.0.1, UDP, as fast as the
// test can send: half of it a real name, half random names that do not
// exist) while two slow askers ask 50 times a second each from other
// prefixes:
//
//   - from ::1, to meshdns's [::1] listener (another socket);
//   - from 127.0.1.1 (another /24), to the same 127.0.0.1 listener the
//     flood hits, so its queries share the flood's socket buffers.
//
// With the default --rate-limit every slow query must be answered right,
// and meshdns's RSS must stay under 300 MiB. With --rate-limit 0 the numbers
// are logged and the slow askers must still get most answers.
//
// The flooder (this test process) is held to one core during the flood so
// that meshdns keeps at least one, as when a flood arrives from another
// machine. Not parallel: it takes all the CPU it can, which would starve
// the timing-sensitive tests.
func TestFlood(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	seed(t, cli, []string{"web"}, []*registry.Machine{
		machineItem("web", "a001", "ams", ip(1, 1)),
		machineItem("web", "a002", "fra", ip(1, 2)),
		machineItem("web", "a003", "iad", ip(1, 3)),
	})
	for _, tc := range []struct {
		name   string
		extra  []string
		strict bool
	}{
		{"default rate limit", nil, true},
		{"rate limit off", []string{"--rate-limit", "0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := harness.StartMeshdns(t, harness.EtcdEndpoints(e.Endpoints()...), harness.IPv6(), args(tc.extra...))
			r := flood(t, m)
			// The strict check's premise is a core for meshdns. When other
			// processes took a good part of the machine during the flood
			// and a slow query went unanswered (not answered wrong), the
			// flood is run once more; the second result stands, whatever
			// the machine does then.
			if tc.strict && r.slowLost() > slowLossAllowed && r.othersCPU() > othersCPUAllowed {
				t.Logf("%s, first flood: %v", tc.name, r)
				t.Logf("other processes took %.2f of the machine's cores during that flood (meshdns %.2f): flooding once more",
					r.othersCPU(), r.cores(r.cpu))
				r = flood(t, m)
			}
			t.Logf("%s: %v", tc.name, r)
			if r.rssMaxKiB > maxRSSKiB || r.hwmKiB > maxRSSKiB {
				t.Errorf("meshdns RSS reached %s (VmHWM %s), want < %s", mib(r.rssMaxKiB), mib(r.hwmKiB), mib(maxRSSKiB))
			}
			for _, s := range r.slow {
				if s.sent < int(floodFor/slowEvery)/2 {
					t.Errorf("slow asker %s sent only %d queries", s.from, s.sent)
				}
				// No loss is allowed, not even on the listener the flood
				// shares: a rate-limited flood costs meshdns one read and
				// one drop per packet, which it keeps up with on the core
				// it has, so only a receive buffer too small to absorb the
				// moments it is not scheduled loses queries there (the
				// kernel's drops at meshdns's sockets are in the log line
				// above).
				if tc.strict && s.lost+s.wrong > slowLossAllowed {
					t.Errorf("slow asker %s: %d of %d queries unanswered, %d answered wrong, want all answered: %s",
						s.from, s.lost, s.sent, s.wrong, strings.Join(s.failures, "; "))
					if o := r.othersCPU(); o > othersCPUAllowed {
						t.Errorf("(other processes took %.2f of the machine's cores during the flood and meshdns got %.2f: this test needs the machine to itself; scripts/test.sh runs packages one at a time)",
							o, r.cores(r.cpu))
					}
				}
				if !tc.strict && s.answered < s.sent/2 {
					t.Errorf("slow asker %s: only %d of %d queries answered right", s.from, s.answered, s.sent)
				}
			}
			if code := m.Stop(); code != 0 {
				t.Errorf("meshdns exited %d after the flood", code)
			}
		})
	}
}

type floodResult struct {
	dur               time.Duration
	sent, answered    int64 // flood packets sent and replies the flood got
	served            float64
	slow              []*slowStats
	rssBeforeKiB      int64
	rssMaxKiB, hwmKiB int64
	goroutines        float64
	kernelDrops       int64   // packets the kernel dropped at meshdns's full sockets
	cpu               float64 // CPU seconds meshdns used
	selfCPU           float64 // CPU seconds this test process (the flooder) used
	machineCPU        float64 // CPU seconds the whole machine was busy
	// cpuWindow is the time between the CPU samples: the flood and its
	// setup and teardown, a little longer than dur.
	cpuWindow time.Duration
}

// cores is CPU seconds over the CPU samples' window, in cores.
func (r floodResult) cores(cpuSeconds float64) float64 { return cpuSeconds / r.cpuWindow.Seconds() }

// slowLost is how many of the slow askers' queries went unanswered (a
// wrong answer is no sign of a starved CPU, so it is not counted here).
func (r floodResult) slowLost() int {
	n := 0
	for _, s := range r.slow {
		n += s.lost
	}
	return n
}

// othersCPU is the CPU, in cores, that the machine spent on anything but
// meshdns and the flooder (this process, with its embedded etcd) during the
// flood: other packages' tests, builds, other daemons, the kernel's work
// not charged to a process, and time stolen by the hypervisor. The strict
// check's premise is that it is near 0.
func (r floodResult) othersCPU() float64 {
	return r.cores(max(0, r.machineCPU-r.cpu-r.selfCPU))
}

func (r floodResult) String() string {
	var b strings.Builder
	secs := r.dur.Seconds()
	fmt.Fprintf(&b, "flood from 127.0.0.1 for %v: %d queries sent (%.0f/s), %d answered (%.0f/s); meshdns counted %.0f answers (%.0f/s)",
		r.dur.Round(time.Millisecond), r.sent, float64(r.sent)/secs, r.answered, float64(r.answered)/secs, r.served, r.served/secs)
	fmt.Fprintf(&b, "; the kernel dropped %d (%.0f/s) at meshdns's full socket buffers, so meshdns read about %.0f/s; meshdns used %.2f CPU, the flooder %.2f, other processes %.2f",
		r.kernelDrops, float64(r.kernelDrops)/secs, float64(r.sent-r.kernelDrops)/secs, r.cores(r.cpu), r.cores(r.selfCPU), r.othersCPU())
	for _, s := range r.slow {
		fmt.Fprintf(&b, "; slow asker %s", s)
	}
	fmt.Fprintf(&b, "; meshdns RSS %s before, max %s during, VmHWM %s; goroutines after %.0f",
		mib(r.rssBeforeKiB), mib(r.rssMaxKiB), mib(r.hwmKiB), r.goroutines)
	return b.String()
}

// flood runs the flood and the slow askers against m for floodFor.
func flood(t *testing.T, m *harness.Meshdns) floodResult {
	t.Helper()
	pid := m.PID()
	r := floodResult{rssBeforeKiB: procKiB(t, pid, "VmRSS")}
	// The flooder (this process) is held to one core, so that meshdns has
	// at least one of its own, as when the flood comes from another
	// machine. Unpinned on a 2-core box, the flooder takes most of both
	// cores and meshdns starves for CPU rather than for anything it could
	// do better. meshdns itself is not pinned: it sized its runtime for
	// every core at start.
	if runtime.NumCPU() >= 2 {
		defer pin(t, os.Getpid(), 0)()
	}
	dropsBefore := socketDrops(t, m.Port())
	cpuBefore := cpuSeconds(t, pid)
	selfBefore := cpuSeconds(t, os.Getpid())
	machineBefore := machineCPUSeconds(t)
	cpuFrom := time.Now()
	before := metrics(t, m.HTTPAddr())["meshdns_dns_requests_total"]

	// Prepared queries: half web.internal, half random names under it that
	// do not exist (NXDOMAIN, subject to response rate limiting).
	var pkts [][]byte
	for i := range 1024 {
		name := "web.internal."
		if i%2 == 1 {
			name = fmt.Sprintf("%012x.vm.web.internal.", rand.Uint64()>>16)
		}
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeAAAA)
		p, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}

	var stop atomic.Bool
	var sent, answered atomic.Int64
	var wg sync.WaitGroup
	var conns []*net.UDPConn
	// Whatever happens, nothing keeps sending after flood returns.
	defer func() {
		stop.Store(true)
		for _, c := range conns {
			c.Close()
		}
	}()
	raddr, err := net.ResolveUDPAddr("udp4", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for range floodSockets {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		mine := make([][]byte, len(pkts))
		for i, p := range pkts {
			mine[i] = append([]byte(nil), p...)
		}
		wg.Add(2)
		go func() { // send as fast as possible
			defer wg.Done()
			var n int64
			for i := 0; !stop.Load(); i++ {
				p := mine[i&1023]
				binary.BigEndian.PutUint16(p, uint16(i))
				if _, err := c.Write(p); err == nil {
					n++
				}
			}
			sent.Add(n)
		}()
		go func() { // count replies until the socket is closed
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				if _, err := c.Read(buf); err != nil {
					if strings.Contains(err.Error(), "closed") {
						return
					}
					continue // e.g. ECONNREFUSED from an earlier packet
				}
				answered.Add(1)
			}
		}()
	}

	// Memory, sampled throughout.
	var rssMax atomic.Int64
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for !stop.Load() {
			if v, err := readProcKiB(pid, "VmRSS"); err == nil && v > rssMax.Load() {
				rssMax.Store(v)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// The slow askers.
	slow := []*slowStats{
		{from: "[::1] to [::1]", network: "udp6", local: &net.UDPAddr{IP: net.IPv6loopback}, remote: m.Addr6()},
		{from: "127.0.1.1 to 127.0.0.1 (the flood's listener)", network: "udp4", local: &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)}, remote: m.Addr()},
	}
	var slowWG sync.WaitGroup
	want := wantAAAA(ip(1, 1).String(), ip(1, 2).String(), ip(1, 3).String())
	for _, s := range slow {
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			s.run(&stop, want)
		}()
	}

	start := time.Now()
	time.Sleep(floodFor) // the flood's length is what is under test
	stop.Store(true)
	r.dur = time.Since(start)
	slowWG.Wait()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	<-sampleDone
	r.sent, r.answered, r.slow = sent.Load(), answered.Load(), slow
	r.kernelDrops = socketDrops(t, m.Port()) - dropsBefore
	r.cpu = cpuSeconds(t, pid) - cpuBefore
	r.selfCPU = cpuSeconds(t, os.Getpid()) - selfBefore
	r.machineCPU = machineCPUSeconds(t) - machineBefore
	r.cpuWindow = time.Since(cpuFrom)
	r.rssMaxKiB, r.hwmKiB = rssMax.Load(), procKiB(t, pid, "VmHWM")
	ms := metrics(t, m.HTTPAddr())
	r.served = ms["meshdns_dns_requests_total"] - before
	r.goroutines = ms["go_goroutines"]
	return r
}

// slowStats is one slow asker: it asks web.internal AAAA every slowEvery
// from its own socket and waits up to a second for each reply.
type slowStats struct {
	from, network string
	local         *net.UDPAddr
	remote        string

	sent, answered, lost, wrong int
	failures                    []string
	maxLatency                  time.Duration
	total                       time.Duration
}

func (s *slowStats) String() string {
	avg := time.Duration(0)
	if s.answered > 0 {
		avg = s.total / time.Duration(s.answered)
	}
	return fmt.Sprintf("%s: %d sent, %d answered right, %d lost, %d wrong; latency avg %v max %v",
		s.from, s.sent, s.answered, s.lost, s.wrong, avg.Round(time.Microsecond), s.maxLatency.Round(time.Microsecond))
}

func (s *slowStats) fail(what string) {
	if len(s.failures) < 5 {
		s.failures = append(s.failures, what)
	}
}

// run sends a query every slowEvery until stop, whether or not earlier
// ones were answered, and counts a query lost if no reply came within a
// second.
func (s *slowStats) run(stop *atomic.Bool, want expectation) {
	raddr, err := net.ResolveUDPAddr(s.network, s.remote)
	if err != nil {
		s.fail(err.Error())
		return
	}
	c, err := net.DialUDP(s.network, s.local, raddr)
	if err != nil {
		s.fail(err.Error())
		return
	}
	defer c.Close()
	var mu sync.Mutex
	pending := map[uint16]time.Time{}
	begin := time.Now()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if strings.Contains(err.Error(), "closed") || strings.Contains(err.Error(), "timeout") {
					return
				}
				continue
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			mu.Lock()
			sentAt, ok := pending[r.Id]
			delete(pending, r.Id)
			if ok {
				took := time.Since(sentAt)
				if err := want(r); err != nil {
					s.wrong++
					s.fail(err.Error())
				} else if took > time.Second {
					s.lost++
					s.fail(fmt.Sprintf("reply after %v", took.Round(time.Millisecond)))
				} else {
					s.answered++
					s.total += took
					s.maxLatency = max(s.maxLatency, took)
				}
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(slowEvery)
	defer tick.Stop()
	for !stop.Load() {
		<-tick.C
		q := new(dns.Msg)
		q.SetQuestion("web.internal.", dns.TypeAAAA)
		mu.Lock()
		s.sent++
		q.Id = uint16(s.sent) // unique among the queries in flight
		pending[q.Id] = time.Now()
		mu.Unlock()
		p, _ := q.Pack()
		if _, err := c.Write(p); err != nil {
			mu.Lock()
			s.fail("write: " + err.Error())
			mu.Unlock()
		}
	}
	// Replies to the last queries may take up to a second.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	for _, at := range pending {
		s.lost++
		s.fail(fmt.Sprintf("no reply to the query sent at +%v", at.Sub(begin).Round(time.Millisecond)))
	}
}

// socketDrops sums the drop counters of the UDP sockets bound to port (on
// any address) in /proc/net/udp and /proc/net/udp6: datagrams the kernel
// discarded because the socket's receive buffer was full.
func socketDrops(t *testing.T, port string) int64 {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf(":%04X", p)
	var total int64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 13 || !strings.HasSuffix(fields[1], suffix) {
				continue
			}
			n, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
			if err == nil {
				total += n
			}
		}
	}
	return total
}

// cpuSeconds is the user and system CPU time pid has used.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// machineCPUSeconds is the CPU time all processes have used, from the
// first line of /proc/stat: everything but idle and iowait (guest time is
// already inside user).
func machineCPUSeconds(t *testing.T) float64 {
	t.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		t.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var busy float64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q: %v", line, err)
		}
		busy += n
	}
	return busy / 100 // USER_HZ
}

// pin sets the CPU affinity of every thread of process pid to cpu (new
// threads inherit it) and returns a function that lets them run anywhere
// again.
func pin(t *testing.T, pid, cpu int) (unpin func()) {
	t.Helper()
	set := func(mask *unix.CPUSet) error {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, mask); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
		}
		return nil
	}
	var one, all unix.CPUSet
	one.Set(cpu)
	for i := range runtime.NumCPU() {
		all.Set(i)
	}
	if err := set(&one); err != nil {
		t.Fatalf("pin process %d to CPU %d: %v", pid, cpu, err)
	}
	return func() {
		if err := set(&all); err != nil {
			t.Errorf("unpin process %d: %v", pid, err)
		}
	}
}
