package sessioncache

import "sync/atomic"

// Stats are counters of one table, summed over its shards and over every process that uses
// the section, since they live in the shared memory.
type Stats struct {
	Len        int    // entries stored, including expired ones not yet reclaimed
	Capacity   int    // records in the section (el_count)
	Hits       uint64 // Gets that found an unexpired entry
	Misses     uint64 // Gets that found nothing or an expired entry
	Sets       uint64 // successful Sets
	Deletes    uint64 // Deletes that removed an entry
	Evictions  uint64 // unexpired entries pushed out to make room
	Expired    uint64 // expired entries whose space was reclaimed
	Recoveries uint64 // locks taken over from dead processes
}

// Stats returns the table's counters. They are read without locks, so under concurrent
// writes they are each current but not a snapshot of one instant.
func (t *Table) Stats() Stats {
	s := Stats{Capacity: int(t.shape.elCount)}
	if t.closed.Load() {
		return s
	}
	for i := range t.shards {
		h := t.shards[i].hdr
		s.Len += int(atomic.LoadUint32(&h.live))
		s.Hits += atomic.LoadUint64(&h.hits)
		s.Misses += atomic.LoadUint64(&h.misses)
		s.Sets += atomic.LoadUint64(&h.sets)
		s.Deletes += atomic.LoadUint64(&h.deletes)
		s.Evictions += atomic.LoadUint64(&h.evictions)
		s.Expired += atomic.LoadUint64(&h.expired)
		s.Recoveries += atomic.LoadUint64(&h.recoveries)
	}
	return s
}

// Len returns the number of entries stored, including expired ones not yet reclaimed.
func (t *Table) Len() int {
	if t.closed.Load() {
		return 0
	}
	n := 0
	for i := range t.shards {
		n += int(atomic.LoadUint32(&t.shards[i].hdr.live))
	}
	return n
}
