package registry

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
			for _, m := range a.Machines {
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

// LoadCopy reads a local copy into the store, publishing it as a stale
// snapshot at the copy's revision, and returns the etcd cluster id it was
// taken from. A copy that is corrupt, cut off, or made for another key
// prefix is rejected whole and the store is left as it was.
func (s *Store) LoadCopy(path, prefix string) (clusterID uint64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNoCopy
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("local copy %s is corrupt: %w", path, err)
	}
	dec := json.NewDecoder(zr)
	var h copyHeader
	if err := dec.Decode(&h); err != nil || h.Format != copyFormat {
		return 0, fmt.Errorf("local copy %s: not a %s file", path, copyFormat)
	}
	if h.Prefix != prefix {
		return 0, fmt.Errorf("local copy %s was made for prefix %q, not %q", path, h.Prefix, prefix)
	}
	l := s.BeginLoad()
	n := 0
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, fmt.Errorf("local copy %s is corrupt or cut off after %d entries: %w", path, n, err)
		}
		if len(raw) > 0 && raw[0] == '{' {
			var t copyTrailer
			if err := json.Unmarshal(raw, &t); err != nil || !t.End || t.Count != n {
				return 0, fmt.Errorf("local copy %s: trailer does not match its %d entries", path, n)
			}
			break
		}
		var entry [2]json.RawMessage
		var key string
		if err := json.Unmarshal(raw, &entry); err != nil || json.Unmarshal(entry[0], &key) != nil {
			return 0, fmt.Errorf("local copy %s: entry %d is malformed", path, n+1)
		}
		if _, err := ParseKey(prefix, prefix+key); err != nil {
			return 0, fmt.Errorf("local copy %s: entry %d: %w", path, n+1, err)
		}
		l.Add(Event{Key: prefix + key, Value: entry[1]})
		n++
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, fmt.Errorf("local copy %s: data after the trailer", path)
	}
	// Only served values are written, so any value that fails now was
	// damaged on the way: trust none of it.
	for key, reason := range l.st.invalid {
		return 0, fmt.Errorf("local copy %s: entry %s is invalid: %s", path, key, reason)
	}
	// The entries carry no revisions, so the witness comes from the header.
	l.st.witness = Witness{Key: h.WitnessKey, ModRevision: h.WitnessRevision, Hash: h.WitnessHash}
	l.commit(h.Revision, true)
	return h.ClusterID, nil
}
