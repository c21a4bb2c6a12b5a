//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/miekg/dns"
)

// newQuery builds a query for name with EDNS(0), as a resolver sends it.
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = uint16(rand.Uint32())
	m.SetEdns0(dns.DefaultMsgSize, false)
	return m
}

// lookupTCP asks addr over TCP, which carries the whole answer.
func lookupTCP(addr, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: timeout}
	r, _, err := c.Exchange(newQuery(name, qtype), addr)
	return r, err
}

// udpPoller asks one server over one UDP socket, one query at a time: the
// cheapest way to notice a change quickly without flooding the server.
type udpPoller struct {
	conn *dns.Conn
	buf  []byte
}

func newUDPPoller(addr string) (*udpPoller, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	return &udpPoller{conn: &dns.Conn{Conn: c, UDPSize: dns.DefaultMsgSize}}, nil
}

// ask sends q and waits up to timeout for the reply with its id,
// discarding late replies to earlier queries.
func (p *udpPoller) ask(q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	q.Id = uint16(rand.Uint32())
	deadline := time.Now().Add(timeout)
	_ = p.conn.SetDeadline(deadline)
	if err := p.conn.WriteMsg(q); err != nil {
		return nil, err
	}
	for {
		r, err := p.conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		if r.Id == q.Id {
			return r, nil
		}
	}
}

func (p *udpPoller) Close() error { return p.conn.Close() }

// checkAnswers asks addr every query in qs over TCP and compares the
// replies with the registry; it returns how many differ and the first few
// differences.
func checkAnswers(ctx context.Context, addr string, qs []query) (int, []string, error) {
	bad := 0
	var notes []string
	for _, q := range qs {
		if ctx.Err() != nil {
			return bad, notes, ctx.Err()
		}
		r, err := lookupTCP(addr, q.Name, q.Type, 5*time.Second)
		if err != nil {
			return bad, notes, fmt.Errorf("%s: %w", q, err)
		}
		if d := diff(expected(q), answerOf(r)); d != "" {
			bad++
			if len(notes) < 5 {
				notes = append(notes, q.String()+": "+d)
			}
		}
	}
	return bad, notes, nil
}

// waitAnswers polls until every query in qs is answered as the registry
// says, returning when that first happened. It fails early if p exits.
func waitAnswers(ctx context.Context, p *proc, addr string, qs []query, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if err := p.errExited(); err != nil {
			return time.Time{}, err
		}
		bad, notes, err := checkAnswers(ctx, addr, qs)
		if err == nil && bad == 0 {
			return time.Now(), nil
		}
		if ctx.Err() != nil {
			return time.Time{}, errInterrupted
		}
		if err != nil {
			last = err.Error()
		} else {
			last = notes[0]
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s at %s: answers not complete after %v; last: %s", p.Name, addr, timeout, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
