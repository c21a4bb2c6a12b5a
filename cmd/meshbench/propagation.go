//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshdns/meshdns/registry"
)

// propConfig is `meshbench propagation`.
type propConfig struct {
	Gen          genConfig
	Loader       string
	Changes      int
	Timeout      time.Duration // per change, before it counts as lost
	ReadyTimeout time.Duration
}

// change is one registry write and when its effects were seen.
type change struct {
	Kind    string // start, stop, move
	AppSize int
	Write   time.Duration // how long the etcd write call took
	Watch   time.Duration // write return → event seen by meshbench's own watch (may be < 0)
	DNS     time.Duration // write return → first DNS answer showing it
	Lost    bool
}

func runPropagation(e *env, c propConfig) error {
	r, err := generate(c.Gen)
	if err != nil {
		return err
	}
	printRegistry(e, r)
	b, err := e.etcdServer()
	if err != nil {
		return err
	}
	prefix := registry.DefaultPrefix
	ls, err := loadRegistry(e.ctx, b.Client, prefix, r, c.Loader)
	if err != nil {
		return err
	}
	e.progress("loaded %d keys with %s in %v", ls.Keys, ls.Loader, ls.Took.Round(time.Millisecond))
	o := r.Orgs[0]
	bin, err := e.meshdnsBin()
	if err != nil {
		return err
	}
	defer stopAll()
	md, err := startMeshdns(meshdnsConfig{Bin: bin, Etcd: b.Endpoint, DefaultOrg: o.Name, Region: e.c.Region,
		DataDir: e.path("meshdns-propagation"), Extra: e.meshdnsExtra()}, "meshdns")
	if err != nil {
		return err
	}
	if _, err := waitAnswers(e.ctx, md.proc, md.Addr, firstOfEachKind(makeMix(o, 200, 1.1, c.Gen.Seed)), c.ReadyTimeout); err != nil {
		return err
	}
	e.progress("meshdns answering; making %d changes", c.Changes)

	wctx, stopWatch := context.WithCancel(e.ctx)
	defer stopWatch()
	kw := watchKeys(wctx, b.Client, prefix+"machines/"+o.Name+"/")
	poller, err := newUDPPoller(md.Addr)
	if err != nil {
		return err
	}
	defer poller.Close()
	p := &propagator{ctx: e.ctx, w: registry.NewWriter(b.Client, prefix), prefix: prefix, kw: kw, poller: poller,
		timeout: c.Timeout, rng: rand.New(rand.NewPCG(c.Gen.Seed, 0x70726f70))}
	for _, a := range o.Apps {
		p.machines = append(p.machines, a.Machines...)
	}
	var ps *perfSession
	if e.c.Perf {
		if ps, err = startPerfRecord(e.dir, "propagation", md.Pid()); err != nil {
			return err
		}
		defer ps.kill()
	}
	gc0 := md.gcCount()
	var changes []change
	for i := range c.Changes {
		ch, err := p.change([]string{"start", "stop", "move"}[i%3])
		if err != nil {
			return fmt.Errorf("change %d: %w", i+1, err)
		}
		changes = append(changes, ch)
		if err := md.errExited(); err != nil {
			return err
		}
	}
	gcs := md.gcCount() - gc0
	if err := writeChanges(e.path("changes.csv"), changes); err != nil {
		return err
	}
	printPropagation(e, c, changes)
	fmt.Fprintf(e.out, "meshdns ran %d garbage collections during the changes; every change: %s\n", gcs, e.path("changes.csv"))
	if ps != nil {
		prof, err := ps.wait(e.ctx, "propagation")
		if err != nil {
			return err
		}
		printStartupProfile(e.out, "propagation", startup{Profile: &prof})
	}
	return nil
}

// writeChanges writes every change as CSV, for a closer look at the tail.
func writeChanges(path string, changes []change) error {
	var b strings.Builder
	b.WriteString("kind,app_machines,write_ms,watch_ms,dns_ms,lost\n")
	for _, ch := range changes {
		fmt.Fprintf(&b, "%s,%d,%.3f,%.3f,%.3f,%t\n", ch.Kind, ch.AppSize,
			float64(ch.Write)/1e6, float64(ch.Watch)/1e6, float64(ch.DNS)/1e6, ch.Lost)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// propagator makes one change at a time and times it.
type propagator struct {
	ctx      context.Context
	w        *registry.Writer
	prefix   string
	kw       *keyWatch
	poller   *udpPoller
	timeout  time.Duration
	rng      *rand.Rand
	machines []*machine
}

// change makes one change of the kind and times it.
func (p *propagator) change(kind string) (change, error) {
	m, region := p.pick(kind)
	a := m.App
	ch := change{Kind: kind, AppSize: len(a.Machines)}
	// The name whose answer shows the change, and how it looks before and
	// after: the machine's own name for start and stop; for a move, a region
	// the app had no machine in, which goes from NXDOMAIN to this machine.
	name := m.ID + ".vm." + a.Name + ".internal."
	has := func(r *dns.Msg) bool { return r.Rcode == dns.RcodeSuccess && hasAddr(r, m.IP) }
	lacks := func(r *dns.Msg) bool { return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 0 }
	before, after := lacks, has
	switch kind {
	case "stop":
		before, after = has, lacks
	case "move":
		name = region + "." + a.Name + ".internal."
		before = func(r *dns.Msg) bool { return r.Rcode == dns.RcodeNameError }
	}
	q := newQuery(name, dns.TypeAAAA)
	// Seeing the old answer first proves the name is answered (and cached)
	// before the write, so what is timed is the update, not a first lookup.
	if _, err := p.pollUntil(q, before, time.Now().Add(p.timeout)); err != nil {
		return ch, fmt.Errorf("%s %s before the change: %w", kind, name, err)
	}
	key := p.prefix + registry.MachineKey(a.Org.Name, a.Name, m.ID).Path()
	p.kw.forget(key)
	start := time.Now()
	var err error
	switch kind {
	case "start":
		err = p.w.SetMachineState(p.ctx, a.Org.Name, a.Name, m.ID, registry.StateStarted)
	case "stop":
		err = p.w.SetMachineState(p.ctx, a.Org.Name, a.Name, m.ID, registry.StateStopped)
	case "move":
		v := m.value()
		v.Region = region
		err = p.w.PutMachine(p.ctx, *v)
	}
	written := time.Now()
	if err != nil {
		return ch, err
	}
	ch.Write = written.Sub(start)
	seen, err := p.pollUntil(q, after, written.Add(p.timeout))
	if err != nil {
		ch.Lost = true
	} else {
		ch.DNS = seen.Sub(written)
	}
	if t, ok := p.kw.wait(key, written.Add(time.Second)); ok {
		ch.Watch = t.Sub(written)
	}
	switch kind {
	case "start", "stop":
		m.Started = kind == "start"
	case "move":
		m.Region = region
	}
	return ch, nil
}

// pick chooses a machine for the kind of change: a stopped one to start, a
// started one to stop or move, and for a move a region its app is not in.
func (p *propagator) pick(kind string) (*machine, string) {
	for {
		m := p.machines[p.rng.IntN(len(p.machines))]
		if m.Started == (kind == "start") {
			continue
		}
		if kind != "move" {
			return m, ""
		}
		have := m.App.deployedRegions()
		var free []string
		for _, r := range popularRegions {
			if !slices.Contains(have, r) {
				free = append(free, r)
			}
		}
		if len(free) > 0 {
			return m, free[p.rng.IntN(len(free))]
		}
	}
}

// pollUntil asks q until ok(reply) holds, returning when the reply that
// showed it arrived.
func (p *propagator) pollUntil(q *dns.Msg, ok func(*dns.Msg) bool, deadline time.Time) (time.Time, error) {
	var last string
	for time.Now().Before(deadline) {
		if p.ctx.Err() != nil {
			return time.Time{}, errInterrupted
		}
		r, err := p.poller.ask(q, 200*time.Millisecond)
		if err == nil && ok(r) {
			return time.Now(), nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	return time.Time{}, fmt.Errorf("not seen in time (last reply: %s)", last)
}

func hasAddr(r *dns.Msg, ip netip.Addr) bool {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.AAAA); ok {
			if got, _ := netip.AddrFromSlice(a.AAAA); got == ip {
				return true
			}
		}
	}
	return false
}

// keyWatch records when meshbench's own etcd watch delivered each key:
// the share of propagation that is etcd's, not meshdns's.
type keyWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func watchKeys(ctx context.Context, cli *clientv3.Client, prefix string) *keyWatch {
	kw := &keyWatch{seen: map[string]time.Time{}}
	wch := cli.Watch(ctx, prefix, clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			now := time.Now()
			kw.mu.Lock()
			for _, ev := range resp.Events {
				kw.seen[string(ev.Kv.Key)] = now
			}
			kw.mu.Unlock()
		}
	}()
	return kw
}

func (kw *keyWatch) forget(key string) {
	kw.mu.Lock()
	delete(kw.seen, key)
	kw.mu.Unlock()
}

// wait returns when key's event arrived, waiting until deadline for it.
func (kw *keyWatch) wait(key string, deadline time.Time) (time.Time, bool) {
	for {
		kw.mu.Lock()
		t, ok := kw.seen[key]
		kw.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return t, ok
		}
		time.Sleep(100 * time.Microsecond)
	}
}
