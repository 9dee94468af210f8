package wire

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// LargeFrame is the body size above which a Reader with a Budget takes a share of it
// before reading the body. Smaller frames are read into the reader's own buffer, which
// never grows past this.
const LargeFrame = 64 << 10

// Budget bounds the bytes of large frames (bodies over LargeFrame) held at once by the
// Readers that share it: a server's connections together hold at most its budget in large
// frames, however many peers announce large frames and then send them slowly. A reader
// that needs a share waits until one is free.
type Budget struct {
	sem     *semaphore.Weighted
	size    int64
	held    atomic.Int64 // bytes taken now
	waiting atomic.Int64 // readers waiting for a share now
}

// NewBudget returns a budget of size bytes; it must be at least the largest frame a
// reader accepts.
func NewBudget(size int64) *Budget {
	return &Budget{sem: semaphore.NewWeighted(size), size: size}
}

// Size returns the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// Held returns the bytes of the budget taken now.
func (b *Budget) Held() int64 { return b.held.Load() }

// Waiting returns how many readers are waiting for a share now.
func (b *Budget) Waiting() int64 { return b.waiting.Load() }

// acquire takes n bytes of the budget, waiting until they are free or ctx ends.
func (b *Budget) acquire(ctx context.Context, n int) error {
	if int64(n) > b.size {
		return fmt.Errorf("%w: a %d-byte frame is larger than the %d-byte frame budget", ErrFrameTooLarge, n, b.size)
	}
	if !b.sem.TryAcquire(int64(n)) {
		b.waiting.Add(1)
		err := b.sem.Acquire(ctx, int64(n))
		b.waiting.Add(-1)
		if err != nil {
			return err
		}
	}
	b.held.Add(int64(n))
	return nil
}

func (b *Budget) release(n int) {
	b.held.Add(-int64(n))
	b.sem.Release(int64(n))
}
