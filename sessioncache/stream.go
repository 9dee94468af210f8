package sessioncache

import "sync/atomic"

// streamPos returns the stream position the table records for the relay whose name hashes
// to relay, and whether it records one.
func (t *Table) streamPos(relay uint64) (StreamPos, bool) {
	sh := &t.shards[0]
	t.lockShard(sh)
	defer t.unlockShard(sh)
	for _, s := range t.hdr.stream {
		if s.relay == relay && s.epoch != 0 {
			return StreamPos{Epoch: s.epoch, Seq: s.seq}, true
		}
	}
	return StreamPos{}, false
}

// setStreamPos records that the table holds every change of relay's stream up to pos. A
// position of the same epoch never moves back. A relay without a slot takes a free one, or
// the first; one that gets none is simply not recorded, so a later process finds no
// position and starts from a gap.
func (t *Table) setStreamPos(relay uint64, pos StreamPos) {
	sh := &t.shards[0]
	t.lockShard(sh)
	defer t.unlockShard(sh)
	slot := -1
	for i, s := range t.hdr.stream {
		if s.relay == relay {
			slot = i
			break
		}
		if s.relay == 0 && slot < 0 {
			slot = i
		}
	}
	if slot < 0 {
		slot = 0
	}
	s := &t.hdr.stream[slot]
	if s.relay == relay && s.epoch == pos.Epoch && s.seq >= pos.Seq {
		return
	}
	s.relay, s.epoch = relay, pos.Epoch
	atomic.StoreUint64(&s.seq, pos.Seq)
}

// Clear removes every entry and returns how many it removed. It locks one shard at a time,
// so entries written meanwhile to shards it has already cleared stay. The eviction
// callbacks are not called.
func (t *Table) Clear() (int, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	n := 0
	for s := range t.shards {
		sh := &t.shards[s]
		t.lockShard(sh)
		releaseAll(sh) // now a set bit means an indexed record
		for i := range sh.count {
			if !inUse(sh, i) {
				continue
			}
			t.unindex(sh, i, t.record(sh, i))
			markFree(sh, i)
			sh.hdr.live--
			sh.hdr.deletes++
			n++
		}
		sh.hdr.minExpiry = 0
		t.unlockShard(sh)
	}
	return n, nil
}
