// Package throttle lets a repeated action (a warning, a wake-up) through at most once per
// period, from any number of goroutines, without a lock. It is not a rate limiter for
// requests: it keeps no budget and never waits.
package throttle

import (
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wallclock"
)

// Throttle remembers when it last let an action through. Its zero value lets the first
// one through.
type Throttle struct {
	last atomic.Int64 // wall clock (wallclock.Nanos) of the last one let through
}

// Allow reports whether the action may happen now: true at most once every period (and
// at once again if the wall clock has stepped back).
func (t *Throttle) Allow(period time.Duration) bool {
	now, last := wallclock.Nanos(), t.last.Load()
	if d := now - last; d >= 0 && d < int64(period) {
		return false
	}
	return t.last.CompareAndSwap(last, now)
}
