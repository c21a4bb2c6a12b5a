package registry

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
)

// The local copy lets a restarted server answer at once, before etcd is
// reachable, and catch up from its revision instead of reloading the whole
// registry: a fleet restart then moves only the changes since.
//
// It is written from a published Snapshot, which is immutable, so writing
// never holds up the watch. It holds what the snapshot serves — every org,
// app, deployed machine, peer, gateway and region — which answers exactly
// as the registry did; keys that were not served (invalid values, destroyed
// machines) are left out and come back with the next full load.
//
// Format: gzip-compressed JSON lines. The first line is a header naming the
// format, the key prefix, the etcd cluster and the revision; then one line
// per key, [path, value]; the last line is a trailer with the count. gzip's
// checksum and the trailer catch a corrupt or cut-off file.

const copyFormat = "meshdns-local-copy/1"

type copyHeader struct {
	Format    string `json:"format"`
	Prefix    string `json:"prefix"`
	ClusterID uint64 `json:"cluster_id"`
	Revision  int64  `json:"revision"`
	// Witness is the snapshot's Witness: checked against etcd at start, it
	// tells a copy of another history (etcd restored, rebuilt) from one
	// etcd can continue. Absent from older copies.
	WitnessKey      string `json:"witness_key,omitempty"`
	WitnessRevision int64  `json:"witness_revision,omitempty"`
	WitnessHash     uint64 `json:"witness_hash,omitempty"`
}

type copyTrailer struct {
	End   bool `json:"end"`
	Count int  `json:"count"`
}

// WriteCopy writes snap to path atomically (a temporary file, synced, then
// renamed over the old copy). It streams: each line is encoded into one
// reused buffer (copyLine) and compressed as it goes, so a copy of a
// million machines makes next to no garbage, and it compresses at
// gzip.BestSpeed — the copy is read once per restart, written every
// --local-copy-interval.
func WriteCopy(path, prefix string, clusterID uint64, snap *Snapshot) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".local-copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename this is a no-op
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	w := &copyWriter{zw: zw}
	err = w.add(appendJSONLine(nil, copyHeader{Format: copyFormat, Prefix: prefix, ClusterID: clusterID, Revision: snap.Revision,
		WitnessKey: snap.witness.Key, WitnessRevision: snap.witness.ModRevision, WitnessHash: snap.witness.Hash}))
	w.n = 0 // the header is not an entry
	for code, r := range snap.regions {
		if err == nil {
			err = w.add(appendJSONLine(w.line, []any{RegionKey(code).Path(), r}))
		}
	}
	for region, g := range snap.gateways {
		if err == nil {
			err = w.add(appendJSONLine(w.line, []any{GatewayKey(region).Path(), g}))
		}
	}
	snap.RangeOrgs(func(o *Org) bool {
		if err = w.add(appendOrgLine(w.line, o), nil); err != nil {
			return false
		}
		for _, an := range o.AppNames() {
			a := o.App(an)
			if err = w.add(appendAppLine(w.line, a), nil); err != nil {
				return false
			}
			for _, m := range a.Machines.All() {
				if err = w.add(appendMachineLine(w.line, m)); err != nil {
					return false
				}
			}
		}
		for _, pn := range o.PeerNames() {
			if err = w.add(appendPeerLine(w.line, o.Name, pn, o.Peer(pn))); err != nil {
				return false
			}
		}
		return true
	})
	if err == nil {
		n := w.n
		err = w.add(appendJSONLine(w.line, copyTrailer{End: true, Count: n}))
	}
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write local copy %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write local copy %s: %w", path, err)
	}
	return nil
}

// copyWriter collects encoded lines in one buffer and hands them to the
// compressor 64 KiB at a time.
type copyWriter struct {
	zw   *gzip.Writer
	line []byte
	n    int // entries added
}

// add takes the buffer with one more line appended (or an encoding error).
func (w *copyWriter) add(b []byte, err error) error {
	if err != nil {
		return err
	}
	w.line = b
	w.n++
	if len(w.line) >= 64<<10 {
		return w.flush()
	}
	return nil
}

func (w *copyWriter) flush() error {
	_, err := w.zw.Write(w.line)
	w.line = w.line[:0]
	return err
}

// ErrNoCopy is returned by LoadCopy when there is no local copy.
var ErrNoCopy = errors.New("no local copy")

// Reading a copy is bounded whatever the file holds: a file that
// decompresses to far more than a copy would (gzip turns a few hundred KB
// of whitespace into hundreds of MB), or holds a line longer than any
// entry, is rejected as soon as that shows, having held at most one line.
const (
	// maxCopyLine bounds one line (one entry). etcd refuses values over
	// 1.5 MiB unless told otherwise.
	maxCopyLine = 4 << 20
	// copyRatio bounds the decompressed size at this many times the file's
	// size. Copies written by WriteCopy come to 10 to 25 times (22.5 for
	// 20,000 machines with sequential ids and addresses); identical
	// metadata on every machine could go further, so the bound leaves room.
	// Whitespace, gzip's best case, reaches 800.
	copyRatio = 256
	// minCopyLimit is the decompressed size allowed whatever the file's size.
	minCopyLimit = 64 << 20
)

type copyLimits struct {
	line         int
	ratio, floor int64
}

var defaultCopyLimits = copyLimits{line: maxCopyLine, ratio: copyRatio, floor: minCopyLimit}

// errLineTooLong is readLine's error for a line over the limit; errOverLimit
// wraps LoadCopy's errors for a copy over a limit.
var (
	errLineTooLong = errors.New("line too long")
	errOverLimit   = errors.New("not a copy meshdns wrote")
)

// LoadCopy reads a local copy into the store, publishing it as a stale
// snapshot at the copy's revision, and returns the etcd cluster id it was
// taken from. A copy that is corrupt, cut off, too large for what it holds,
// or made for another key prefix is rejected whole and the store is left
// as it was.
func (s *Store) LoadCopy(path, prefix string) (clusterID uint64, err error) {
	return s.loadCopy(path, prefix, defaultCopyLimits)
}

func (s *Store) loadCopy(path, prefix string, lim copyLimits) (clusterID uint64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNoCopy
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("local copy %s is corrupt: %w", path, err)
	}
	limit := max(lim.floor, fi.Size()*lim.ratio)
	lr := &io.LimitedReader{R: zr, N: limit + 1}
	br := bufio.NewReaderSize(lr, 64<<10)
	var line []byte
	lineNo := 0
	// next reads the next line; a line cut off by the end of the file is
	// an error, as is a line or a file over the limits.
	next := func() error {
		lineNo++
		var rerr error
		line, rerr = readLine(br, line, lim.line)
		switch {
		case lr.N <= 0:
			return fmt.Errorf("local copy %s decompresses to more than %d bytes (%d times its %d bytes): %w", path, limit, lim.ratio, fi.Size(), errOverLimit)
		case errors.Is(rerr, errLineTooLong):
			return fmt.Errorf("local copy %s: line %d is longer than %d bytes: %w", path, lineNo, lim.line, errOverLimit)
		}
		return rerr
	}
	// overLimit tells next's errors for the limits from the others.
	overLimit := func(err error) bool { return errors.Is(err, errOverLimit) }
	var h copyHeader
	if err := next(); err != nil {
		if overLimit(err) {
			return 0, err
		}
		return 0, fmt.Errorf("local copy %s: not a %s file", path, copyFormat)
	}
	if err := json.Unmarshal(line, &h); err != nil || h.Format != copyFormat {
		return 0, fmt.Errorf("local copy %s: not a %s file", path, copyFormat)
	}
	if h.Prefix != prefix {
		return 0, fmt.Errorf("local copy %s was made for prefix %q, not %q", path, h.Prefix, prefix)
	}
	l := s.BeginLoad()
	type copyClaim struct {
		Claim
		network netip.Prefix
	}
	claims := map[string]copyClaim{}
	l.st.prevClaim = func(org string) (Claim, netip.Prefix, bool) {
		c, ok := claims[org]
		return c.Claim, c.network, ok
	}
	n := 0
	for {
		if err := next(); err != nil {
			if overLimit(err) {
				return 0, err
			}
			return 0, fmt.Errorf("local copy %s is corrupt or cut off after %d entries: %w", path, n, err)
		}
		if line[0] == '{' {
			var t copyTrailer
			if err := json.Unmarshal(line, &t); err != nil || !t.End || t.Count != n {
				return 0, fmt.Errorf("local copy %s: trailer does not match its %d entries", path, n)
			}
			break
		}
		// [path, value], and for an org [path, value, claim]. Copies
		// written before claims were kept have no claim: their orgs date
		// from revision 0, as the copy's holders of their networks.
		var entry []json.RawMessage
		var key string
		if err := json.Unmarshal(line, &entry); err != nil || len(entry) < 2 || len(entry) > 3 || json.Unmarshal(entry[0], &key) != nil {
			return 0, fmt.Errorf("local copy %s: entry %d is malformed", path, n+1)
		}
		k, err := ParseKey(prefix, prefix+key)
		if err != nil {
			return 0, fmt.Errorf("local copy %s: entry %d: %w", path, n+1, err)
		}
		ev := Event{Key: prefix + key, Value: entry[1]}
		if len(entry) == 3 {
			var c Claim
			if k.Kind != KindOrg || json.Unmarshal(entry[2], &c) != nil {
				return 0, fmt.Errorf("local copy %s: entry %d is malformed", path, n+1)
			}
			// The key as it was when the copy was made, and its claim
			// then: dateClaim keeps it.
			ev.CreateRevision, ev.ModRevision, ev.Version = c.CreateRevision, c.ModRevision, c.Version
			if v, err := Decode(k, entry[1]); err == nil {
				claims[k.Name] = copyClaim{c, v.(*OrgValue).Network}
			}
		}
		l.Add(ev)
		n++
	}
	// Reading to the end checks gzip's checksum.
	switch err := next(); {
	case overLimit(err):
		return 0, err
	case len(line) > 0:
		return 0, fmt.Errorf("local copy %s: data after the trailer", path)
	case err != io.EOF:
		return 0, fmt.Errorf("local copy %s is corrupt: %w", path, err)
	}
	// Only served values are written, so any value that fails now was
	// damaged on the way: trust none of it.
	for key, reason := range l.st.invalid {
		return 0, fmt.Errorf("local copy %s: entry %s is invalid: %s", path, key, reason)
	}
	// The entries carry no revisions, so the witness comes from the header.
	// Org entries carry their claim's revisions, which the store takes
	// for a put to witness: the header's witness replaces any of them.
	l.st.witness = Witness{Key: h.WitnessKey, ModRevision: h.WitnessRevision, Hash: h.WitnessHash}
	l.st.witnessValue, l.st.witnessPending = nil, false
	l.commit(h.Revision, true)
	return h.ClusterID, nil
}

// readLine reads one line with its newline into buf (reused), at most max
// bytes; at the end of the input it returns what is left and io.EOF.
func readLine(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			return buf[:0], errLineTooLong
		}
		buf = append(buf, chunk...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}
