package relay

import (
	"sync/atomic"
	"time"
)

// throttle lets a repeated warning through at most once per period, from any goroutine.
type throttle struct {
	last atomic.Int64 // unix nanoseconds of the last one let through
}

// allow reports whether a warning may be logged now: true at most once every period.
func (t *throttle) allow(period time.Duration) bool {
	now := time.Now().UnixNano()
	last := t.last.Load()
	return now-last >= int64(period) && t.last.CompareAndSwap(last, now)
}
