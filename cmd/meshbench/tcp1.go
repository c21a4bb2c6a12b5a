//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// transportTCP1 is one query per TCP connection: connect, ask, read the
// answer, close, as a stub resolver retrying a truncated answer does.
// dnsperf cannot do this (its TCP mode keeps each client's connection), so
// meshbench's own client does, the same for every server.
const transportTCP1 = "tcp1"

// tcp1Clients is how many connections are open at once in a tcp1 run:
// -c times -q, but at most 40, under meshdns's per-prefix cap of 50
// connections and NSD's tcp-count of 100 (every client is 127.0.0.1).
func tcp1Clients(l load) int { return min(l.C*l.Q, 40) }

// speaks reports whether t can be measured with load l: the echo
// baseline answers UDP only.
func (t target) speaks(l load) bool { return t.Name != "echo" || l.T == "" || l.T == "udp" }

// runTCP1 asks the queries of mix round-robin at addr for dur, each on a
// connection of its own, from tcp1Clients(l) clients at once. The client
// closes with SO_LINGER 0 (a reset) so that a run of ~100,000 connections
// leaves no TIME_WAIT sockets to exhaust loopback's ephemeral ports; the
// server's side of the work is the same. CPU is this process's CPU time
// during the run (the client, as dnsperf's is for the other modes).
func runTCP1(ctx context.Context, addr string, mix []query, l load, dur time.Duration) (perfResult, error) {
	msgs, err := packMix(mix)
	if err != nil {
		return perfResult{}, err
	}
	var (
		next     atomic.Uint64
		cs       = newClientStats()
		wg       sync.WaitGroup
		deadline = cs.start.Add(dur)
		dialer   = net.Dialer{Timeout: 5 * time.Second}
	)
	for range tcp1Clients(l) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2+65535)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				msg := msgs[(next.Add(1)-1)%uint64(len(msgs))]
				t0 := time.Now()
				cs.sent.Add(1)
				rcode, err := askOnce(ctx, &dialer, addr, msg, buf, t0.Add(5*time.Second))
				if err != nil {
					cs.lost.Add(1)
					cs.fail(err)
					continue
				}
				cs.answered(t0, rcode)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return perfResult{}, errInterrupted
	}
	return cs.result()
}

// askOnce connects, sends msg (length-prefixed) in one write, reads the
// answer into buf and closes with a reset. It returns the answer's rcode.
func askOnce(ctx context.Context, d *net.Dialer, addr string, msg, buf []byte, deadline time.Time) (int, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer func() {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}()
	c.SetDeadline(deadline)
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	return readAnswer(c, buf)
}

// rusageSelf is this process's CPU time so far.
func rusageSelf() time.Duration {
	ru := selfUsage()
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfUsage is this process's resource usage so far (zero if it cannot be read).
func selfUsage() syscall.Rusage {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return syscall.Rusage{}
	}
	return ru
}

// runTCPPipelined asks the queries of mix round-robin at addr for dur over
// l.C connections, each sending l.Q queries in one write and reading their
// l.Q answers before the next batch (dnsperf -m tcp cannot be used: its
// TCP mode drops the connection on answers of more than a few KiB, which
// big apps' AAAA answers are, and loses every query in flight). When the
// server closes a connection (meshdns after 1,000 queries), the client
// connects again and sends the batch's unanswered queries again.
func runTCPPipelined(ctx context.Context, addr string, mix []query, l load, dur time.Duration) (perfResult, error) {
	msgs, err := packMix(mix)
	if err != nil {
		return perfResult{}, err
	}
	var (
		next     atomic.Uint64
		cs       = newClientStats()
		wg       sync.WaitGroup
		deadline = cs.start.Add(dur)
		dialer   = net.Dialer{Timeout: 5 * time.Second}
	)
	for range l.C {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			buf := make([]byte, 2+65535)
			var batch []byte
			for ctx.Err() == nil && time.Now().Before(deadline) {
				batch = batch[:0]
				for range l.Q {
					batch = append(batch, msgs[(next.Add(1)-1)%uint64(len(msgs))]...)
				}
				t0 := time.Now()
				cs.sent.Add(int64(l.Q))
				for tries := 0; len(batch) > 0; tries++ {
					if c == nil {
						if c, err = dialer.DialContext(ctx, "tcp", addr); err != nil {
							cs.fail(err)
							return
						}
					}
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(batch); err != nil {
						c.Close()
						c = nil
						if tries > 3 {
							cs.fail(err)
							return
						}
						continue
					}
					for len(batch) > 0 {
						rcode, err := readAnswer(c, buf)
						if err != nil {
							c.Close()
							c = nil
							break
						}
						cs.answered(t0, rcode)
						batch = batch[2+int(binary.BigEndian.Uint16(batch)):]
					}
					if c == nil && tries > 3 {
						cs.lost.Add(int64(countMessages(batch)))
						cs.fail(fmt.Errorf("connection closed 4 times in a row"))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return perfResult{}, errInterrupted
	}
	return cs.result()
}

func countMessages(b []byte) int {
	n := 0
	for len(b) >= 2 {
		b = b[2+int(binary.BigEndian.Uint16(b)):]
		n++
	}
	return n
}

// readAnswer reads one length-prefixed answer into buf and returns its rcode.
func readAnswer(c net.Conn, buf []byte) (int, error) {
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if n < 12 {
		return 0, fmt.Errorf("answer of %d bytes", n)
	}
	if _, err := io.ReadFull(c, buf[2:2+n]); err != nil {
		return 0, err
	}
	return int(buf[2+3] & 0xF), nil
}

// packMix packs each query of mix with its 2-byte length.
func packMix(mix []query) ([][]byte, error) {
	if len(mix) == 0 {
		return nil, fmt.Errorf("no queries")
	}
	msgs := make([][]byte, len(mix))
	for i, q := range mix {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Type)
		m.Id = uint16(i)
		b, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", q, err)
		}
		msgs[i] = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	return msgs, nil
}

// clientStats counts a run of meshbench's own DNS clients, shared by
// their goroutines.
type clientStats struct {
	sent, done, lost atomic.Int64
	latSum, latMax   atomic.Int64 // nanoseconds
	rcodes           [16]atomic.Int64
	errOnce          sync.Once
	firstErr         error
	ru0              time.Duration
	start            time.Time
}

func newClientStats() *clientStats {
	return &clientStats{ru0: rusageSelf(), start: time.Now()}
}

// answered counts an answer with rcode to a query sent at t0.
func (cs *clientStats) answered(t0 time.Time, rcode int) {
	d := int64(time.Since(t0))
	cs.done.Add(1)
	cs.latSum.Add(d)
	for m := cs.latMax.Load(); d > m && !cs.latMax.CompareAndSwap(m, d); m = cs.latMax.Load() {
	}
	cs.rcodes[rcode].Add(1)
}

// fail keeps the run's first error.
func (cs *clientStats) fail(err error) { cs.errOnce.Do(func() { cs.firstErr = err }) }

// result makes the run's perfResult; call it once every client is done.
func (cs *clientStats) result() (perfResult, error) {
	el := time.Since(cs.start)
	done := cs.done.Load()
	r := perfResult{Sent: cs.sent.Load(), Completed: done, Lost: cs.lost.Load(), RunTime: el, CPU: rusageSelf() - cs.ru0}
	if done == 0 {
		return r, fmt.Errorf("no query answered (first error: %v)", cs.firstErr)
	}
	r.QPS = float64(done) / el.Seconds()
	r.AvgLatency = time.Duration(cs.latSum.Load() / done)
	r.MaxLat = time.Duration(cs.latMax.Load())
	var parts []string
	for rc := range cs.rcodes {
		if n := cs.rcodes[rc].Load(); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", dns.RcodeToString[rc], 100*float64(n)/float64(done)))
		}
	}
	sort.Strings(parts)
	r.Rcodes = strings.Join(parts, ", ")
	return r, nil
}
