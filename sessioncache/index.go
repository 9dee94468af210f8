package sessioncache

import (
	"bytes"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// This file holds the index: where a key's slot is and how slots are found, added and
// removed. See layout.go for the slot format.

// seededHash is the seeded xxhash of a key. Its top bits pick the shard; its low 40 bits are
// the key's tag, whose low 32 bits pick the home slot.
func seededHash(seed uint64, key []byte) uint64 {
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	d.Write(key)
	return d.Sum64()
}

// locate returns the shard and tag of hash h.
func (t *Table) locate(h uint64) (*shard, uint64) {
	return &t.shards[h>>(64-t.shardBits)&(uint64(len(t.shards))-1)], tagOf(h)
}

// tagOf returns the tag of hash h.
func tagOf(h uint64) uint64 {
	if testHookTag != nil {
		return testHookTag(h & tagMask)
	}
	return h & tagMask
}

// testHookTag, when set by a test, narrows tags so that keys share them often.
var testHookTag func(tag uint64) uint64

// home returns the slot where the probe for tag starts.
func home(sh *shard, tag uint64) uint32 {
	return uint32(uint64(uint32(tag)) * uint64(sh.nslots) >> 32)
}

func makeSlot(tag uint64, idx uint32) uint64 { return tag<<slotIndexBits | uint64(idx+1) }

// slotRecord returns the shard-local record index a non-empty slot points to, and whether
// it is in range.
func slotRecord(sh *shard, s uint64) (uint32, bool) {
	idx := uint32(s & slotIndexMask)
	return idx - 1, idx != 0 && idx <= sh.count
}

func (sh *shard) next(i uint32) uint32 {
	if i++; i == sh.nslots {
		return 0
	}
	return i
}

// find probes for key without a lock. Every slot and length is bounds-checked, since a
// writer may be changing them; the caller validates the result with the sequence counter.
func (t *Table) find(sh *shard, tag uint64, key []byte) (*recordHeader, lookupResult) {
	r, _, res := t.findAt(sh, tag, key)
	return r, res
}

// findAt is find that also returns the position of key's slot, for a caller that holds the
// shard's lock.
func (t *Table) findAt(sh *shard, tag uint64, key []byte) (*recordHeader, uint32, lookupResult) {
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == 0 {
			return nil, i, lookupMiss
		}
		if s>>slotIndexBits == tag {
			idx, ok := slotRecord(sh, s)
			if !ok {
				return nil, 0, lookupBroken
			}
			r := t.record(sh, idx)
			if int(r.keyLen) == len(key) && r.state == stateLive &&
				bytes.Equal(unsafe.Slice((*byte)(t.recordData(r)), len(key)), key) {
				return r, i, lookupHit
			}
		}
		i = sh.next(i)
	}
	return nil, 0, lookupBroken
}

// probeTag finds, in a locked shard, the slot holding tag or else the empty slot where tag
// belongs. It returns the position and its content (0 when empty). ok is false only if the
// index has no empty slot, which the layout rules out unless the section was damaged.
func probeTag(sh *shard, tag uint64) (pos uint32, s uint64, ok bool) {
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == 0 || s>>slotIndexBits == tag {
			return i, s, true
		}
		i = sh.next(i)
	}
	return 0, 0, false
}

// probeEmpty returns the first empty slot of tag's probe sequence in a locked shard, for a
// key known to have no slot, and whether the probe passed a slot holding tag (another key's).
func probeEmpty(sh *shard, tag uint64) (pos uint32, sameTag, ok bool) {
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == 0 {
			return i, sameTag, true
		}
		sameTag = sameTag || s>>slotIndexBits == tag
		i = sh.next(i)
	}
	return 0, false, false
}

// probeKey returns, in a locked shard whose slots all point to whole records, the position
// of key's slot, or else of the empty slot where it goes, and whether the probe passed a
// slot of another key with its tag.
func (t *Table) probeKey(sh *shard, tag uint64, key []byte) (pos uint32, sameTag, ok bool) {
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == 0 {
			return i, sameTag, true
		}
		if s>>slotIndexBits == tag {
			// Verify probes a shard that may be damaged: a slot out of range or a record
			// with a key too long matches nothing.
			idx, inRange := slotRecord(sh, s)
			if inRange {
				r := t.record(sh, idx)
				if uint32(r.keyLen) <= t.shape.maxKey && bytes.Equal(t.keyBytes(r), key) {
					return i, sameTag, true
				}
			}
			sameTag = true
		}
		i = sh.next(i)
	}
	return 0, false, false
}

// probeRecord finds, in a locked shard, the slot that points to record idx, whose key has
// tag. It returns false if there is none.
func probeRecord(sh *shard, tag uint64, idx uint32) (uint32, bool) {
	want := makeSlot(tag, idx)
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == want {
			return i, true
		}
		if s == 0 {
			return 0, false
		}
		i = sh.next(i)
	}
	return 0, false
}

// removeSlot empties slot hole of a locked shard and shifts later entries of its cluster
// back, so every entry stays reachable from its home without tombstones.
func removeSlot(sh *shard, hole uint32) {
	j := hole
	for range sh.nslots {
		j = sh.next(j)
		s := *slot(sh, j)
		if s == 0 {
			break
		}
		h := home(sh, s>>slotIndexBits)
		// The entry at j must stay if its home lies cyclically in (hole, j].
		if hole < j && hole < h && h <= j || hole > j && (h > hole || h <= j) {
			continue
		}
		*slot(sh, hole) = s
		hole = j
	}
	*slot(sh, hole) = 0
}

// unindex removes the slot of live record idx from a locked shard.
func (t *Table) unindex(sh *shard, idx uint32, r *recordHeader) {
	tag := tagOf(t.hash(t.keyBytes(r)))
	if pos, ok := probeRecord(sh, tag, idx); ok {
		removeSlot(sh, pos)
	}
}
