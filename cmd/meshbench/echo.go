//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// echoServer is the baseline ISC recommends measuring first: the cheapest
// possible "DNS server" on this host. Each reader loops read → patch →
// write: it copies the query into a reply buffer, sets QR and AA, and sends
// it back. No parsing, no allocation; what it reaches is the limit of the
// socket calls and dnsperf on this machine, whatever the server does.
type echoServer struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	tids []int // the readers' threads, for their CPU time
}

// startEcho serves on a kernel-chosen loopback port with readers
// goroutines (one per core the servers under test are given).
func startEcho(readers int) (*echoServer, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	e := &echoServer{conn: c}
	for range readers {
		e.wg.Add(1)
		go e.serve()
	}
	return e, nil
}

// Addr is the address to send queries to.
func (e *echoServer) Addr() string { return e.conn.LocalAddr().String() }

func (e *echoServer) serve() {
	defer e.wg.Done()
	// One thread per reader, so its CPU time can be read from
	// /proc/self/task without counting the rest of meshbench.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	e.mu.Lock()
	e.tids = append(e.tids, syscall.Gettid())
	e.mu.Unlock()
	buf := make([]byte, 4096)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if n < 12 {
			continue
		}
		flags := binary.BigEndian.Uint16(buf[2:4])
		binary.BigEndian.PutUint16(buf[2:4], flags|1<<15|1<<10) // QR, AA
		_, _ = e.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

// Close stops the readers.
func (e *echoServer) Close() {
	e.conn.Close()
	e.wg.Wait()
}

// CPU is the CPU time the readers have used so far.
func (e *echoServer) CPU() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var total time.Duration
	for _, tid := range e.tids {
		total += statCPU(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	}
	return total
}
