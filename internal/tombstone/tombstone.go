// Package tombstone remembers recently deleted keys, so that an answer from a lower tier
// that was already on its way when a key was deleted is not put back.
package tombstone

import (
	"sync"
	"sync/atomic"
	"time"
)

// Set is a set of deleted keys, each kept for a fixed time. It is safe for concurrent use.
type Set struct {
	ttl   time.Duration
	seq   atomic.Uint64 // counts deletions; a cheap clock for DeletedAfter
	mu    sync.Mutex
	at    map[string]mark
	sweep time.Time
}

type mark struct {
	at  time.Time
	seq uint64
	rev uint64 // the deletion's revision, 0 if unknown
}

// New returns a set that keeps each deletion for ttl.
func New(ttl time.Duration) *Set {
	return &Set{ttl: ttl, at: map[string]mark{}}
}

// Add records that key was deleted now.
func (t *Set) Add(key []byte) { t.AddRev(key, 0) }

// AddRev records that key was deleted now, by a deletion of revision rev.
func (t *Set) AddRev(key []byte, rev uint64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.at[string(key)]; ok && old.rev > rev {
		rev = old.rev
	}
	t.at[string(key)] = mark{at: now, seq: t.seq.Add(1), rev: rev}
	if now.Sub(t.sweep) > t.ttl {
		for k, m := range t.at {
			if now.Sub(m.at) > t.ttl {
				delete(t.at, k)
			}
		}
		t.sweep = now
	}
}

// Clear forgets key: it was set again.
func (t *Set) Clear(key []byte) {
	if t.seq.Load() == 0 {
		return // nothing was ever deleted
	}
	t.mu.Lock()
	if len(t.at) > 0 {
		delete(t.at, string(key))
	}
	t.mu.Unlock()
}

// Seq returns the current deletion sequence: pass it to DeletedAfter later to ask whether
// a key was deleted in between. It costs an atomic load, not a clock read.
func (t *Set) Seq() uint64 { return t.seq.Load() }

// DeletedAfter reports whether key was deleted after Seq returned seq (and within the TTL).
func (t *Set) DeletedAfter(key []byte, seq uint64) bool { return t.DeletedAfterRev(key, seq, 0) }

// DeletedAfterRev is DeletedAfter for an answer of revision rev: it reports whether key was
// deleted after Seq returned seq by a deletion at least as new as that answer (or of an
// unknown revision). An older deletion recorded meanwhile (one replayed from a change
// stream, say) does not override a newer version.
func (t *Set) DeletedAfterRev(key []byte, seq, rev uint64) bool {
	if t.seq.Load() == seq {
		return false // nothing was deleted since: no lock needed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.at[string(key)]
	return ok && m.seq > seq && (m.rev == 0 || rev == 0 || m.rev >= rev)
}

// Covers reports whether a deletion of key with a revision of at least rev is recorded
// (within the TTL): a version of revision rev arrived after it and must not be kept.
func (t *Set) Covers(key []byte, rev uint64) bool {
	if t.seq.Load() == 0 || rev == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.at[string(key)]
	return ok && m.rev >= rev
}
