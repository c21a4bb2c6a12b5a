package registry

import (
	"bufio"
	"fmt"
	"strings"
)

// ParseText reads registry entries written one per line as
// "<key below the prefix> <JSON value>", e.g.
//
//	orgs/acme {"network":"fdaa:0:18::/48"}
//	machines/acme/web/3d8d9e0b2ee489 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
//
// Blank lines and lines starting with '#' are ignored. Golden tests, the
// demo registry and bulk tools use it; the events carry increasing
// revisions so that earlier lines count as older.
func ParseText(prefix, text string) ([]Event, error) {
	var evs []Event
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		key, val, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"<key> <json>\", got %q", line, s)
		}
		rev := int64(len(evs) + 1)
		evs = append(evs, Event{Key: prefix + key, Value: []byte(strings.TrimSpace(val)), CreateRevision: rev, ModRevision: rev, Version: 1})
	}
	return evs, sc.Err()
}

// SnapshotFromText builds a Snapshot from ParseText lines, as a fresh load
// would. It is meant for tests and examples.
func SnapshotFromText(text string, opts ...StoreOption) (*Snapshot, *Store, error) {
	evs, err := ParseText(DefaultPrefix, text)
	if err != nil {
		return nil, nil, err
	}
	s := NewStore(DefaultPrefix, opts...)
	s.Replace(int64(len(evs)), evs)
	return s.Snapshot(), s, nil
}
