package registry

import (
	"fmt"
	"testing"
)

// TestRecentInvalid checks the last few invalid keys: newest first, at
// most 10, and a key leaves the list once it is valid again or deleted.
func TestRecentInvalid(t *testing.T) {
	s := NewStore(DefaultPrefix)
	s.Replace(1, []Event{{Key: DefaultPrefix + "orgs/acme", Value: []byte(`{"network":"fdaa:0:18::/48"}`)}})
	if got := s.RecentInvalid(); len(got) != 0 {
		t.Fatalf("no invalid values yet: %v", got)
	}
	key := func(i int) string { return fmt.Sprintf("%smachines/acme/web/%04x", DefaultPrefix, i) }
	for i := range 12 {
		s.Apply(int64(2+i), []Event{{Key: key(i), Value: []byte(`{"region":"ams","ip":"not-an-ip","state":"started"}`)}})
	}
	got := s.RecentInvalid()
	if len(got) != recentInvalidMax || got[0].Key != key(11) || got[9].Key != key(2) || got[0].Reason == "" || got[0].Since.IsZero() {
		t.Fatalf("recent invalid %+v: want keys 11 down to 2, with reasons", got)
	}
	if s.InvalidCount() != 12 {
		t.Errorf("InvalidCount %d, want 12", s.InvalidCount())
	}
	// Fixed and deleted keys leave the list.
	s.Apply(20, []Event{
		{Key: key(11), Value: []byte(`{"region":"ams","ip":"fdaa:0:18::5","state":"started"}`)},
		{Key: key(10), Delete: true},
	})
	got = s.RecentInvalid()
	if len(got) != 8 || got[0].Key != key(9) {
		t.Errorf("after fixing 11 and deleting 10: %+v, want 9 down to 2", got)
	}
}
