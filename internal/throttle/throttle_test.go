package throttle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThrottle: the first action goes through, the others within the period do not, from
// any number of goroutines; one after the period does.
func TestThrottle(t *testing.T) {
	var th Throttle
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if th.Allow(time.Hour) {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := passed.Load(); n != 1 {
		t.Fatalf("%d actions let through within the period, want 1", n)
	}
	th.last.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	if !th.Allow(time.Hour) {
		t.Fatal("an action after the period was held back")
	}
}
