package registry

import (
	"sync/atomic"
	"time"
)

// recentInvalidMax is how many skipped values RecentInvalid remembers.
const recentInvalidMax = 10

// InvalidValue is a registry key whose value is not served, and why.
type InvalidValue struct {
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"` // when it was found invalid (its write, or the last full load)
}

// recentInvalid keeps the last few keys found invalid, newest first, for
// an operator's status page. The feeder updates it (under Store.mu) and
// publishes a copy, so readers never wait for a load.
type recentInvalid struct {
	list []InvalidValue
	pub  atomic.Pointer[[]InvalidValue]
}

// note records the keys logged as invalid in this batch and drops the
// ones that are no longer invalid (now valid, or deleted).
func (r *recentInvalid) note(logged []string, invalid map[string]string, now time.Time) {
	if len(logged) == 0 {
		// The usual batch: nothing newly invalid. Rebuild only if a listed
		// key was fixed or deleted.
		same := true
		for _, v := range r.list {
			if reason, ok := invalid[v.Key]; !ok || reason != v.Reason {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	next := make([]InvalidValue, 0, recentInvalidMax)
	for i := len(logged) - 1; i >= 0 && len(next) < recentInvalidMax; i-- {
		k := logged[i]
		if reason, ok := invalid[k]; ok && !hasKey(next, k) {
			next = append(next, InvalidValue{Key: k, Reason: reason, Since: now})
		}
	}
	for _, v := range r.list {
		if len(next) == recentInvalidMax {
			break
		}
		if reason, ok := invalid[v.Key]; ok && reason == v.Reason && !hasKey(next, v.Key) {
			next = append(next, v)
		}
	}
	r.list = next
	pub := append([]InvalidValue(nil), next...)
	r.pub.Store(&pub)
}

func hasKey(l []InvalidValue, k string) bool {
	for _, v := range l {
		if v.Key == k {
			return true
		}
	}
	return false
}

// RecentInvalid returns up to 10 of the keys most recently found holding a
// value that is not served, newest first, with the reason (the full list is
// in the log; InvalidCount counts them all). It never blocks.
func (s *Store) RecentInvalid() []InvalidValue {
	if p := s.recent.pub.Load(); p != nil {
		return *p
	}
	return nil
}
