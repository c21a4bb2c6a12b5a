package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// stderrIsTerminal decides whether meshctl load draws progress; tests
// replace it (from tests that do not run in parallel).
var stderrIsTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressWriter draws one self-overwriting line of a bulk load's progress
// (entries written, rate, time left) on a terminal, and nothing at all
// elsewhere, so scripts and logs get only the final summary.
type progressWriter struct {
	out      io.Writer
	on       bool
	now      func() time.Time
	every    time.Duration // at most one redraw per interval
	mu       sync.Mutex
	start    time.Time
	lastDraw time.Time
	drawn    bool
}

func newProgressWriter(out io.Writer, isTerminal func(io.Writer) bool) *progressWriter {
	return &progressWriter{out: out, on: isTerminal(out), now: time.Now, every: 200 * time.Millisecond}
}

// begin marks the start of writing (the rate is measured from here).
func (p *progressWriter) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = p.now()
}

// update is the registry.WithProgress callback.
func (p *progressWriter) update(written, total int) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.drawn && written < total && now.Sub(p.lastDraw) < p.every {
		return
	}
	p.lastDraw, p.drawn = now, true
	el := now.Sub(p.start)
	line := fmt.Sprintf("writing: %d of %d entries (%.0f%%)", written, total, 100*float64(written)/float64(max(total, 1)))
	if el > 0 && written > 0 {
		rate := float64(written) / el.Seconds()
		left := time.Duration(float64(total-written) / rate * float64(time.Second))
		line += fmt.Sprintf(", %.0f/s, %s left", rate, left.Round(time.Second))
	}
	// \r and erase-line: the next draw (or done) replaces this one.
	fmt.Fprintf(p.out, "\r\x1b[K%s", line)
}

// done erases the progress line, if one was drawn.
func (p *progressWriter) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.drawn = false
	}
}
