// Package revision hands out the revisions that order the versions of a key across the
// session tier: a hybrid logical clock whose readings follow the wall clock in nanoseconds
// and never repeat or go backwards within a process, and which moves past every revision it
// is shown, so a write made after a host saw another write is ordered after it.
package revision

import (
	"sync/atomic"
	"time"
)

// Clock issues revisions. The zero value is ready to use; it is safe for concurrent use.
type Clock struct {
	last atomic.Uint64
	now  func() time.Time // for tests; nil means time.Now
}

// Next returns a revision higher than every revision this clock issued or observed before.
func (c *Clock) Next() uint64 {
	wall := c.wall()
	for {
		last := c.last.Load()
		next := max(wall, last+1)
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Observe moves the clock past rev, a revision seen from elsewhere.
func (c *Clock) Observe(rev uint64) {
	for {
		last := c.last.Load()
		if rev <= last || c.last.CompareAndSwap(last, rev) {
			return
		}
	}
}

func (c *Clock) wall() uint64 {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if ns := now().UnixNano(); ns > 0 {
		return uint64(ns)
	}
	return 1
}
