package faults

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/harness"
	"github.com/meshdns/meshdns/internal/etcdtest"
	"github.com/meshdns/meshdns/registry"
)

const (
	// sweepFor is how long the member sweeps.
	sweepFor = 10 * time.Second
	// sweepCacheSize is meshdns's --answer-cache-size in the sweep.
	sweepCacheSize = "16MiB"
	// maxSweepGrowthKiB bounds how much meshdns's RSS may grow during the
	// sweep over what it was before: the cache's 16 MiB, as much again of
	// garbage between collections (GOGC 100), and room for the rest.
	maxSweepGrowthKiB = 64 << 10
)

// TestAnswerCacheMemory: one member of the org (loopback, through
// --default-org) sweeps, for 10 s, the things the UDP answer cache is keyed
// on: EDNS sizes 512 to 4096, the DO bit, and source addresses (AAAA
// answers are ordered per asker), from 127.1.0.0 up with a new address
// every 200 queries, and a quarter of the queries for random names that do
// not exist. An app of 100 machines makes each AAAA answer fill the reply.
// meshdns's RSS must stay within maxSweepGrowthKiB of what it was before,
// and it must still answer right. Before the cache had one byte budget
// (each UDP reader kept up to 50,000 answers keyed on the exact EDNS size)
// the sweep grew it by hundreds of MiB.
//
// Not parallel: it takes all the CPU it can, and memory figures of a busy
// machine say little.
func TestAnswerCacheMemory(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	var machines []*registry.Machine
	var addrs []string
	for i := range 100 {
		machines = append(machines, machineItem("web", fmt.Sprintf("%04x", 0xa000+i), regions[i%len(regions)], ip(1, i+1)))
		addrs = append(addrs, ip(1, i+1).String())
	}
	seed(t, cli, []string{"web"}, machines)
	m := harness.StartMeshdns(t, harness.EtcdEndpoints(e.Endpoints()...),
		args("--rate-limit", "0", "--answer-cache-size", sweepCacheSize))
	pid := m.PID()
	server, err := net.ResolveUDPAddr("udp4", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		r, err := ask(m.Addr(), "web.internal.", dns.TypeAAAA, true, 2*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(r.Answer) != len(addrs) {
			t.Fatalf("%s: %d AAAA records over TCP, want %d", when, len(r.Answer), len(addrs))
		}
	}
	check("before the sweep")
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	rssBefore := procKiB(t, pid, "VmRSS")
	resetPeakRSS(t, pid)

	// The sweeper (this process) is held to one core, so that meshdns
	// keeps at least one.
	if runtime.NumCPU() >= 2 {
		defer pin(t, os.Getpid(), 0)()
	}
	var rssMax atomic.Int64
	var stop atomic.Bool
	var sent, sources atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // memory, sampled throughout
		defer wg.Done()
		for !stop.Load() {
			if v, err := readProcKiB(pid, "VmRSS"); err == nil && v > rssMax.Load() {
				rssMax.Store(v)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	const senders = 2
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var n int64
			for k := 0; !stop.Load(); k++ {
				// 127.<g+1>.<k>: a new source address, of the same member.
				src := &net.UDPAddr{IP: net.IPv4(127, byte(g+1), byte(k>>8), byte(k))}
				c, err := net.ListenUDP("udp4", src)
				if err != nil {
					continue // e.g. a port race; the next address will do
				}
				sources.Add(1)
				for i := 0; i < 200 && !stop.Load(); i++ {
					q := new(dns.Msg)
					name := "web.internal."
					if i%4 == 3 {
						name = fmt.Sprintf("%x.web.internal.", rng.Uint64())
					}
					q.SetQuestion(name, dns.TypeAAAA)
					if i%8 != 0 {
						q.SetEdns0(uint16(512+rng.IntN(4096-512+1)), rng.IntN(2) == 0)
					}
					p, err := q.Pack()
					if err != nil {
						continue
					}
					if _, err := c.WriteToUDP(p, server); err == nil {
						n++
					}
				}
				c.Close() // replies are not read: they cost meshdns the same
			}
			sent.Add(n)
		}()
	}
	time.Sleep(sweepFor) // the sweep's length is what is under test
	stop.Store(true)
	wg.Wait()
	hwm := procKiB(t, pid, "VmHWM")
	growth := max(rssMax.Load(), hwm) - rssBefore
	t.Logf("sweep for %v: %d queries from %d source addresses; meshdns RSS %s before, max %s during (VmHWM %s), grew %s (bound %s); requests counted %0.f",
		sweepFor, sent.Load(), sources.Load(), mib(rssBefore), mib(rssMax.Load()), mib(hwm), mib(growth), mib(maxSweepGrowthKiB),
		metric(t, m.HTTPAddr(), "meshdns_dns_requests_total"))
	if sent.Load() < 100000 {
		t.Errorf("the sweep sent only %d queries in %v", sent.Load(), sweepFor)
	}
	if growth > maxSweepGrowthKiB {
		t.Errorf("meshdns's RSS grew %s during the sweep, want < %s with --answer-cache-size %s", mib(growth), mib(maxSweepGrowthKiB), sweepCacheSize)
	}
	check("after the sweep")
	if code := m.Stop(); code != 0 {
		t.Errorf("meshdns exited %d after the sweep", code)
	}
}
