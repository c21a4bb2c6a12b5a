package forward

import "time"

// SetClock replaces the forwarder's clock, so cache tests need not sleep.
func SetClock(f *Forwarder, now func() time.Time) { f.now = now }
