package sessioncache

import "sync/atomic"

// Stats are counters of one table, summed over its shards and over every process that uses
// the section, since they live in the shared memory.
//
// Hits and Misses are counted by each process on its own and added to the section in
// batches of 64 per shard, so that processes reading the same shards do not
// pass a counter's cache line back and forth on every Get. A Table's Stats include its own
// process's unbatched counts; another process's may be up to 63 per shard behind until it
// closes its Table, which adds them (a process killed before that loses them).
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
		r := t.shards[i].reads
		s.Hits += atomic.LoadUint64(&h.hits) + r.hits.Load()%readBatch
		s.Misses += atomic.LoadUint64(&h.misses) + r.misses.Load()%readBatch
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

// readBatch is how many Gets of one outcome a process counts for a shard before it adds
// them to the shard's header.
const readBatch = 64

// readCounts are one process's hits and misses of one shard, on a cache line of their own.
// Whenever one reaches a multiple of readBatch, readBatch is added to the header's counter.
type readCounts struct {
	hits, misses atomic.Uint64
	_            [48]byte
}

func (sh *shard) countHit() {
	if sh.reads.hits.Add(1)%readBatch == 0 {
		atomic.AddUint64(&sh.hdr.hits, readBatch)
	}
}

func (sh *shard) countMiss() {
	if sh.reads.misses.Add(1)%readBatch == 0 {
		atomic.AddUint64(&sh.hdr.misses, readBatch)
	}
}

// publishReads adds this process's unbatched hits and misses to the section; Close calls
// it once no other call is running.
func (t *Table) publishReads() {
	for i := range t.shards {
		sh := &t.shards[i]
		atomic.AddUint64(&sh.hdr.hits, sh.reads.hits.Swap(0)%readBatch)
		atomic.AddUint64(&sh.hdr.misses, sh.reads.misses.Swap(0)%readBatch)
	}
}
