package relay

import (
	"sync"
	"time"
)

// tombstones remember recently deleted keys, so an answer from a lower tier that was on
// its way while the key was deleted is not put back.
type tombstones struct {
	ttl   time.Duration
	mu    sync.Mutex
	at    map[string]time.Time
	sweep time.Time
}

func newTombstones(ttl time.Duration) *tombstones {
	return &tombstones{ttl: ttl, at: map[string]time.Time{}}
}

func (t *tombstones) add(key []byte) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at[string(key)] = now
	if now.Sub(t.sweep) > t.ttl {
		for k, at := range t.at {
			if now.Sub(at) > t.ttl {
				delete(t.at, k)
			}
		}
		t.sweep = now
	}
}

// clear forgets key: it was set again.
func (t *tombstones) clear(key []byte) {
	t.mu.Lock()
	if len(t.at) > 0 {
		delete(t.at, string(key))
	}
	t.mu.Unlock()
}

// deletedSince reports whether key was deleted at or after start.
func (t *tombstones) deletedSince(key []byte, start time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[string(key)]
	return ok && !at.Before(start)
}
