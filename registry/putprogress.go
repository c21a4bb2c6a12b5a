package registry

import (
	"sync"
	"sync/atomic"
)

// WithProgress has PutAll call fn after each transaction it commits, with
// the number of items written so far (a key given twice counts once) and
// the number it will write in all. Calls never overlap and written only
// grows. Single writes (PutOrg...) ignore it.
func WithProgress(fn func(written, total int)) PutOption {
	return func(o *putOptions) { o.progress = fn }
}

// progressReporter counts committed puts for WithProgress; transactions
// of members commit four at a time.
type progressReporter struct {
	fn      func(written, total int)
	total   int
	written atomic.Int64
	mu      sync.Mutex
	last    int
}

func newProgress(opts []PutOption, total int) *progressReporter {
	var po putOptions
	for _, o := range opts {
		o(&po)
	}
	return &progressReporter{fn: po.progress, total: total}
}

// add records n more puts committed.
func (p *progressReporter) add(n int) {
	if p == nil || p.fn == nil {
		return
	}
	w := int(p.written.Add(int64(n)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if w > p.last {
		p.last = w
		p.fn(w, p.total)
	}
}
