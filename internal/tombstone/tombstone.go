// Package tombstone remembers recently deleted keys, so that an answer from a lower tier
// that was already on its way when a key was deleted is not put back.
package tombstone

import (
	"sync"
	"time"
)

// Set is a set of deleted keys, each kept for a fixed time. It is safe for concurrent use.
type Set struct {
	ttl   time.Duration
	mu    sync.Mutex
	at    map[string]time.Time
	sweep time.Time
}

// New returns a set that keeps each deletion for ttl.
func New(ttl time.Duration) *Set {
	return &Set{ttl: ttl, at: map[string]time.Time{}}
}

// Add records that key was deleted now.
func (t *Set) Add(key []byte) {
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

// Clear forgets key: it was set again.
func (t *Set) Clear(key []byte) {
	t.mu.Lock()
	if len(t.at) > 0 {
		delete(t.at, string(key))
	}
	t.mu.Unlock()
}

// DeletedSince reports whether key was deleted at or after start.
func (t *Set) DeletedSince(key []byte, start time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[string(key)]
	return ok && !at.Before(start)
}
