package wallclock

import (
	"testing"
	"time"
)

// TestNanosFollowsTheWallClock: a reading lies between two readings of time.Now, within
// the microsecond Nanos may round away.
func TestNanosFollowsTheWallClock(t *testing.T) {
	for range 1000 {
		before := time.Now().UnixNano()
		got := Nanos()
		after := time.Now().UnixNano()
		if got < before-int64(time.Microsecond) || got > after {
			t.Fatalf("Nanos() = %d, not within [%d, %d]", got, before-int64(time.Microsecond), after)
		}
	}
}

func BenchmarkNanos(b *testing.B) {
	for b.Loop() {
		Nanos()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now().UnixNano()
	}
}
