package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// DNS over TCP, with the accept loop our own so that no tenant can take
// TCP from the others (issue #10):
//
//   - Every connection is accepted at once; none waits in the kernel's
//     accept queue behind a full server (where the queries of every
//     tenant waited before).
//   - Each source prefix (IPv6 /64, IPv4 /24, as the rate limiter counts)
//     holds at most MaxTCPConnsPerPrefix connections. A new connection
//     from a prefix at its cap replaces that prefix's least recently
//     used idle connection, or is closed if none is idle.
//   - All prefixes together hold at most MaxTCPConns. At that cap a new
//     connection from a prefix holding fewer than the biggest holders
//     replaces the least recently used of their connections (idle ones
//     first); from a biggest holder itself it replaces its own idle one
//     as above. So a flood, from one prefix or from many, pushes out the
//     flooders' own connections down to a fair share, never those of a
//     prefix holding less.
//   - The first query must arrive within TCPFirstQueryTimeout of the
//     connect; later ones within TCPIdleTimeout of the previous answer.
//   - An asker refused for who it is (no org, or another org's
//     <network>::3) is closed right after its REFUSED answer.
//   - Queries count against the per-prefix rate limit as over UDP; a
//     connection over it is closed without an answer (a TCP client cannot
//     be spoofed, and a closed connection frees its slot and tells the
//     client at once, where a dropped query leaves both waiting).

// tcpWriteTimeout bounds writing one answer to a client that does not read.
const tcpWriteTimeout = 5 * time.Second

// Defaults of the Config fields that are zero.
const (
	defaultMaxTCPConns          = 1000
	defaultMaxTCPConnsPerPrefix = 50
	defaultTCPFirstQueryTimeout = 2 * time.Second
)

// tcpConn is one accepted connection. Its fields below conn are guarded by
// tcpTable.mu.
type tcpConn struct {
	conn     net.Conn
	src, dst netip.Addr
	key      prefixKey
	// last orders the connections by when they were accepted or last
	// answered (a tick of tcpTable); busy is set while a query is being
	// answered.
	last uint64
	busy bool
	// idx is its place in its holder's conns; -1 once removed.
	idx int
}

// holder is the connections of one source prefix.
type holder struct {
	conns []*tcpConn
}

// tcpTable counts the open TCP connections of a server, per prefix and in
// all, and picks the connection to close when a cap is reached.
type tcpTable struct {
	mu      sync.Mutex
	total   int
	holders map[prefixKey]*holder
	tick    uint64
	closed  bool
	// accepted, refused and replaced count connections since start.
	accepted, refused, replaced uint64
}

func newTCPTable() *tcpTable { return &tcpTable{holders: map[prefixKey]*holder{}} }

// admit counts c in, or returns false when it must be closed at once. A
// connection to close to make room is returned as victim; the caller
// closes it.
func (t *tcpTable) admit(c *tcpConn, perPrefix, global int) (victim *tcpConn, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false
	}
	victim, ok = t.place(c, perPrefix, global)
	if ok {
		t.accepted++
	} else {
		t.refused++
	}
	if victim != nil {
		t.replaced++
	}
	return victim, ok
}

func (t *tcpTable) place(c *tcpConn, perPrefix, global int) (victim *tcpConn, ok bool) {
	h := t.holders[c.key]
	n := 0
	if h != nil {
		n = len(h.conns)
	}
	switch {
	case n >= perPrefix:
		// The prefix gives up its own least recently used idle
		// connection for the new one, or the new one goes.
		if victim = h.lru(true); victim == nil {
			return nil, false
		}
	case t.total >= global:
		most := t.most()
		if n >= most {
			// This prefix is (one of) the biggest: it takes room
			// only from itself.
			if h == nil {
				return nil, false
			}
			if victim = h.lru(true); victim == nil {
				return nil, false
			}
		} else {
			victim = t.lruOfBiggest(most)
		}
	}
	if victim != nil {
		t.remove(victim)
	}
	if h == nil {
		h = &holder{}
		t.holders[c.key] = h
	}
	t.tick++
	c.idx, c.last = len(h.conns), t.tick
	h.conns = append(h.conns, c)
	t.total++
	return victim, true
}

// most is the number of connections of the biggest holder.
func (t *tcpTable) most() int {
	most := 0
	for _, h := range t.holders {
		most = max(most, len(h.conns))
	}
	return most
}

// lruOfBiggest picks the connection to close for a prefix holding fewer
// than most: among the holders of most connections, the least recently
// used idle one, so that a holder's connections in use are the last to
// go. If all of theirs are busy the least recently used goes all the
// same, or a holder could keep the whole server by keeping busy.
func (t *tcpTable) lruOfBiggest(most int) *tcpConn {
	var idle, any *tcpConn
	for _, h := range t.holders {
		if len(h.conns) != most {
			continue
		}
		if c := h.lru(true); c != nil && (idle == nil || c.last < idle.last) {
			idle = c
		}
		if c := h.lru(false); c != nil && (any == nil || c.last < any.last) {
			any = c
		}
	}
	if idle != nil {
		return idle
	}
	return any
}

// lru is the holder's connection answered (or accepted) longest ago:
// among the idle ones only, or among all.
func (h *holder) lru(idleOnly bool) *tcpConn {
	var old *tcpConn
	for _, c := range h.conns {
		if (idleOnly && c.busy) || (old != nil && c.last >= old.last) {
			continue
		}
		old = c
	}
	return old
}

// remove takes c out of the counts; t.mu is held.
func (t *tcpTable) remove(c *tcpConn) {
	if c.idx < 0 {
		return
	}
	h := t.holders[c.key]
	last := h.conns[len(h.conns)-1]
	h.conns[c.idx], last.idx = last, c.idx
	h.conns[len(h.conns)-1] = nil
	h.conns = h.conns[:len(h.conns)-1]
	c.idx = -1
	t.total--
	if len(h.conns) == 0 {
		delete(t.holders, c.key)
	}
}

// release takes c out of the counts when its connection ends.
func (t *tcpTable) release(c *tcpConn) {
	t.mu.Lock()
	t.remove(c)
	t.mu.Unlock()
}

// setBusy marks c as answering (busy) or idle from now on. It returns
// false if c was closed to make room for another connection.
func (t *tcpTable) setBusy(c *tcpConn, busy bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.idx < 0 {
		return false
	}
	c.busy = busy
	if !busy {
		t.tick++
		c.last = t.tick
	}
	return true
}

// closeAll closes every connection and admits no more (shutdown).
func (t *tcpTable) closeAll() {
	t.mu.Lock()
	t.closed = true
	var all []*tcpConn
	for _, h := range t.holders {
		all = append(all, h.conns...)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.conn.Close()
	}
}

// TCPStats counts the server's TCP connections.
type TCPStats struct {
	Open int // open now
	// Accepted, Refused (closed at once, over a cap) and Replaced (closed
	// to make room for a newer connection) count since the server started.
	Accepted, Refused, Replaced uint64
}

// TCPStats are the counts of TCP connections.
func (s *Server) TCPStats() TCPStats {
	t := s.tcpConns
	t.mu.Lock()
	defer t.mu.Unlock()
	return TCPStats{Open: t.total, Accepted: t.accepted, Refused: t.refused, Replaced: t.replaced}
}

// openFrom is the number of open connections of src's prefix.
func (t *tcpTable) openFrom(src netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.holders[prefixOf(src, false)]; h != nil {
		return len(h.conns)
	}
	return 0
}

// acceptTCP accepts connections on l until it is closed, each served on a
// goroutine of its own.
func (s *Server) acceptTCP(l net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little
			// rather than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("tcp accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := &tcpConn{conn: nc}
		if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
			c.src = a.AddrPort().Addr().Unmap()
		}
		if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
			c.dst = a.AddrPort().Addr().Unmap()
		}
		c.key = prefixOf(c.src, false)
		cfg := s.cfg.Load()
		victim, ok := s.tcpConns.admit(c, cfg.MaxTCPConnsPerPrefix, cfg.MaxTCPConns)
		if victim != nil {
			victim.conn.Close()
			s.log.Debug("tcp connection closed to make room", zap.Stringer("src", victim.src), zap.Stringer("for", c.src))
		}
		if !ok {
			nc.Close()
			s.log.Debug("tcp connection refused: over the connection caps", zap.Stringer("src", c.src))
			continue
		}
		s.wg.Add(1)
		go s.serveTCPConn(c)
	}
}

// tcpWriteBatch is how many bytes of answers to pipelined queries are
// gathered at most before they are written.
const tcpWriteBatch = 64 << 10

// tcpReadBuffer is what one read of a connection asks for: room for many
// pipelined queries (a query is rarely above 100 bytes).
const tcpReadBuffer = 16 << 10

// serveTCPConn answers the queries of one connection on this one
// goroutine. Each read takes every query already buffered; they are
// answered in order by a TCP worker (the pipeline UDP uses, its answer
// cache included), straight into the write buffer, and their answers
// leave in one write.
func (s *Server) serveTCPConn(c *tcpConn) {
	defer s.wg.Done()
	defer s.tcpConns.release(c)
	defer c.conn.Close()
	cfg := s.cfg.Load()
	bufs := getTCPBufs()
	defer putTCPBufs(bufs)
	rbuf, wbuf := bufs.r, bufs.w
	defer func() {
		// Keep the buffers for the next connection unless a big
		// message or burst grew them.
		if len(rbuf) == tcpReadBuffer && cap(wbuf) <= tcpReadBuffer {
			bufs.w = wbuf[:0]
		}
	}()
	have := 0 // bytes in rbuf not yet answered
	n := 0    // queries answered
	timeout := min(cfg.TCPFirstQueryTimeout, cfg.TCPIdleTimeout)
	// readSet and writeSet are when the deadlines were last set (coarse
	// clock): a busy connection moves them only every tenth of their
	// length, not for every batch (each move costs a timer update).
	var readSet, writeSet int64
	for cfg.TCPMaxQueries < 0 || n < cfg.TCPMaxQueries {
		// The deadline is set when a new message is awaited and covers
		// the whole of it, so a client sending a byte at a time holds the
		// connection no longer than an idle one.
		if !fullMessage(rbuf[:have]) {
			if now := s.clock.now(); now-readSet > int64(timeout/10) || readSet == 0 {
				if err := c.conn.SetReadDeadline(time.Unix(0, now).Add(timeout)); err != nil {
					return
				}
				readSet = now
			}
		}
		for !fullMessage(rbuf[:have]) {
			if have >= 2 {
				if need := 2 + int(binary.BigEndian.Uint16(rbuf)); need > len(rbuf) {
					rbuf = append(rbuf[:have], make([]byte, need-have)...)
				}
			}
			m, err := c.conn.Read(rbuf[have:])
			if m == 0 && err != nil {
				return
			}
			have += m
		}
		if !s.tcpConns.setBusy(c, true) {
			return // closed to make room for another connection
		}
		var stop bool
		var off int
		wbuf, off, n, stop = s.answerTCP(c, cfg, rbuf[:have], wbuf[:0], n)
		if len(wbuf) > 0 {
			if now := s.clock.now(); now-writeSet > int64(tcpWriteTimeout/10) {
				if err := c.conn.SetWriteDeadline(time.Unix(0, now).Add(tcpWriteTimeout)); err != nil {
					return
				}
				writeSet = now
			}
			if _, err := c.conn.Write(wbuf); err != nil {
				s.log.Debug("tcp write failed", zap.Stringer("to", c.src), zap.Error(err))
				return
			}
		}
		if stop || !s.tcpConns.setBusy(c, false) {
			return
		}
		have = copy(rbuf, rbuf[off:have])
		if cap(wbuf) > 4*tcpReadBuffer+maxTCPSize {
			wbuf = nil // a burst of big answers: do not keep its buffer
		}
		if len(rbuf) > tcpReadBuffer && have <= tcpReadBuffer {
			rbuf = append(bufs.r[:0], rbuf[:have]...)[:tcpReadBuffer]
		}
		cfg = s.cfg.Load()
		if timeout != cfg.TCPIdleTimeout {
			timeout, readSet = cfg.TCPIdleTimeout, 0
		}
	}
}

// workerPool lends TCP workers to connections, a batch of queries at a
// time. Each worker keeps its answer cache between loans, so TCP answers
// come from the same kind of cache as UDP's; there are at most 2 per core
// (created when first needed), as no more can run at once.
type workerPool struct {
	mu    sync.Mutex
	n     int
	ready chan *worker
}

func newWorkerPool() *workerPool {
	return &workerPool{ready: make(chan *worker, max(2, 2*runtime.GOMAXPROCS(0)))}
}

func (p *workerPool) get(s *Server) *worker {
	select {
	case w := <-p.ready:
		return w
	default:
	}
	p.mu.Lock()
	if p.n < cap(p.ready) {
		p.n++
		p.mu.Unlock()
		w := s.newWorker()
		w.tr = TCP
		return w
	}
	p.mu.Unlock()
	return <-p.ready
}

func (p *workerPool) put(w *worker) { p.ready <- w }

// tcpBufs are a connection's read and write buffers, kept for the next
// connection: one query per connection (a stub retrying over TCP) would
// otherwise allocate them each time.
type tcpBufs struct{ r, w []byte }

// tcpBufFree holds the buffers of closed connections. Not a sync.Pool:
// under a stream of short connections the heap is small and collected
// often, and a sync.Pool is emptied by every other collection.
var tcpBufFree = make(chan *tcpBufs, 256)

func getTCPBufs() *tcpBufs {
	select {
	case b := <-tcpBufFree:
		return b
	default:
		return &tcpBufs{r: make([]byte, tcpReadBuffer), w: make([]byte, 0, tcpReadBuffer)}
	}
}

func putTCPBufs(b *tcpBufs) {
	select {
	case tcpBufFree <- b:
	default:
	}
}

// fullMessage reports whether b starts with a whole length-prefixed message.
func fullMessage(b []byte) bool {
	return len(b) >= 2 && len(b) >= 2+int(binary.BigEndian.Uint16(b))
}

// answerTCP answers the whole messages at the start of in, in order,
// appending each answer with its length to out. It returns out, how much
// of in was consumed, the count of queries answered, and stop when the
// connection must be closed after out is written (over the rate limit, a
// refused asker, a message that is no query, the query cap reached).
func (s *Server) answerTCP(c *tcpConn, cfg *Config, in, out []byte, n int) (_ []byte, off, _ int, stop bool) {
	var w *worker
	defer func() {
		if w != nil {
			w.out = w.out[:0:0] // the buffer is the connection's: do not keep it
			s.tcpWorkers.put(w)
		}
	}()
	rl := s.limiter.Load()
	// Answers leave at the latest when tcpWriteBatch bytes are ready, so a
	// long pipeline of big answers streams out as it is answered.
	for fullMessage(in[off:]) && (cfg.TCPMaxQueries < 0 || n < cfg.TCPMaxQueries) && len(out) < tcpWriteBatch {
		size := int(binary.BigEndian.Uint16(in[off:]))
		raw := in[off+2 : off+2+size]
		off += 2 + size
		n++
		if !rl.allow(c.src, false) {
			s.limited.tcpClosed()
			s.log.Debug("tcp connection over the rate limit closed", zap.Stringer("src", c.src))
			return out, off, n, true
		}
		if w == nil {
			w = s.tcpWorkers.get(s)
		}
		// The answer is built right after its length in out: no copy.
		at := len(out)
		out = append(out, 0, 0)
		w.out = out[at+2 : at+2]
		ans := w.handle(raw, c.src, c.dst)
		if w.slow {
			// Forwarding: answered without holding the worker.
			w.out = w.out[:0:0]
			s.tcpWorkers.put(w)
			w = nil
			ans = s.general(Query{Raw: raw, Src: c.src, Dst: c.dst, Transport: TCP})
		}
		if ans == nil {
			return out[:at], off, n, true // not a query: nothing to answer, nothing more to read
		}
		if len(ans) > dns.MaxMsgSize {
			s.log.Error("tcp answer longer than a TCP message; closing the connection", zap.Int("size", len(ans)))
			return out[:at], off, n, true
		}
		if len(ans) > 0 && at+2 < cap(out) && &ans[0] == &out[:at+3][at+2] {
			out = out[:at+2+len(ans)] // built in place
		} else {
			out = append(out, ans...)
		}
		binary.BigEndian.PutUint16(out[at:], uint16(len(ans)))
		if len(ans) >= 4 && int(ans[3]&0xF) == dns.RcodeRefused && s.refusedAsker(c, cfg) {
			return out, off, n, true
		}
	}
	return out, off, n, cfg.TCPMaxQueries >= 0 && n >= cfg.TCPMaxQueries
}

// refusedAsker reports whether c's source is refused for who it is: no
// org, or an asker of another org at an org's <network>::3. Such a
// connection will get nothing but REFUSED, so it is not kept open.
func (s *Server) refusedAsker(c *tcpConn, cfg *Config) bool {
	snap := s.store.Snapshot()
	if snap == nil {
		return false
	}
	_, ok := identify(snap, c.src, c.dst, cfg.DefaultOrg)
	return !ok
}
