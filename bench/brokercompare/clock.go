package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// clock runs one cell's time: -warmup, then -duration during which measuring is true. The
// cell's goroutines stop when stop is set, and report their first error with fail, which
// ends the cell at once; so does a child's death.
type clock struct {
	measuring, stop atomic.Bool
	failed          chan struct{}
	once            sync.Once
	err             error
}

func newClock() *clock { return &clock{failed: make(chan struct{})} }

// fail records the cell's first error and ends it.
func (k *clock) fail(err error) {
	k.once.Do(func() {
		k.err = err
		k.stop.Store(true)
		close(k.failed)
	})
}

// run waits through the warm-up and the measured time and sets stop. It returns the
// measured time, or the error that ended the cell early (a dead child's first).
func (k *clock) run() (time.Duration, error) {
	if err := k.sleep(*flagWarmup); err != nil {
		return 0, err
	}
	k.measuring.Store(true)
	start := time.Now()
	err := k.sleep(*flagDuration)
	k.measuring.Store(false)
	elapsed := time.Since(start)
	k.stop.Store(true)
	return elapsed, err
}

func (k *clock) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-k.failed:
		return blame(k.err)
	case <-died:
		k.stop.Store(true)
		return diedErr
	}
}

// failure returns the error that ended the cell, if any, preferring a dead child's.
func (k *clock) failure() error {
	select {
	case <-k.failed:
		return blame(k.err)
	default:
		return childFailure()
	}
}
