package relay

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThrottle: the first warning goes through, the others within the period do not, from
// any number of goroutines.
func TestThrottle(t *testing.T) {
	var th throttle
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if th.allow(time.Hour) {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := passed.Load(); n != 1 {
		t.Fatalf("%d warnings let through within the period, want 1", n)
	}
	th.last.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	if !th.allow(time.Hour) {
		t.Fatal("a warning after the period was held back")
	}
}
