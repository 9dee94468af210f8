package sessioncache

import (
	"math/bits"
	"unsafe"
)

// This file holds how a shard finds free records and gives records up: its bitmap (see
// layout.go) and two short lists in the first line of its header. Only lock holders use
// them.
//
// A write takes its record from the reserved list, which a refill fills with the next free
// records at or after the shard's cursor, in address order: consecutive writes of a shard
// land on neighbouring records, which the processor fetches ahead. A record given up (the
// old version of an updated entry, a deleted one) goes on the pending list, whose records a
// refill clears in the bitmap. So a Set touches the bitmap only on about one write in four,
// and otherwise only the header line it has already taken with the lock.
//
// Crash safety: a record leaves the reserved list only once its state says "writing", and an
// updated entry's old record is pending before the index points to the new one, so repair
// (which ignores both lists) never keeps a version older than one a reader may have seen.

// usedWord returns the address of word w of sh's bitmap.
func usedWord(sh *shard, w uint32) *uint64 {
	return (*uint64)(unsafe.Add(sh.used, uintptr(w)*8))
}

// inUse reports whether record i of sh has its bit set.
func inUse(sh *shard, i uint32) bool {
	return *usedWord(sh, i/64)&(1<<(i%64)) != 0
}

// markUsed sets record i's bit.
func markUsed(sh *shard, i uint32) { *usedWord(sh, i/64) |= 1 << (i % 64) }

// markFree clears record i's bit without touching the record.
func markFree(sh *shard, i uint32) { *usedWord(sh, i/64) &^= 1 << (i % 64) }

// recentWindow is how many records before the cursor count as recently written.
const recentWindow = 64

// recentlyWritten reports whether record i of sh is among the recentWindow records before the
// cursor, the last ones the shard's writes were given.
func recentlyWritten(sh *shard, i uint32) bool {
	c := sh.hdr.cursor
	if c == 0 || c > sh.count {
		c = sh.count
	}
	d := c - 1 - i // distance behind the cursor, wrapping around
	if i >= c {
		d += sh.count
	}
	return d < recentWindow
}

// A shard's Sets write ahead (access.go) unless its updates keep finding their entries
// among its recent writes, as those of a hot set do: then they probe first, so that they can
// overwrite those records in place. shard.hot, process-local and changed only under the
// shard's lock, counts toward that choice: it rises by hotRise for an update that found a
// recent record and falls by one for one that did not, between 0 and hotMax; at
// hotProbeFirst or more the shard probes first. It takes one update in five or more that
// finds a recent record to keep a shard probing first. (It is atomic only because the lock
// lives in shared memory, where the race detector cannot see it.)
const (
	hotRise       = 4
	hotMax        = 16
	hotProbeFirst = 8
)

// noteUpdate counts an update of a locked shard that found (recent) or did not find its entry
// among the shard's recent writes. It writes only when the count changes, so that a shard at
// either end does not dirty the cache line it shares with its neighbours.
func (sh *shard) noteUpdate(recent bool) {
	old := sh.hot.Load()
	h := old
	if recent {
		h = min(h+hotRise, hotMax)
	} else if h > 0 {
		h--
	}
	if h != old {
		sh.hot.Store(h)
	}
}

// takeFree returns a free record for a write, in state "writing", or false when the shard
// has none (every record is indexed). The lists live in shared memory, so their lengths and
// entries are checked: a damaged entry is skipped (Verify reports it), never followed.
func (t *Table) takeFree(sh *shard) (uint32, bool) {
	for range reserveCap + 2 {
		n := min(sh.hdr.nReserved, reserveCap)
		if n == 0 {
			if !refill(sh) {
				return 0, false
			}
			continue
		}
		n--
		i := sh.hdr.reserved[n]
		if i >= sh.count {
			sh.hdr.nReserved = n
			continue
		}
		storeRelease32(&t.record(sh, i).state, stateWriting)
		sh.hdr.nReserved = n
		return i, true
	}
	return 0, false
}

// giveUp puts unindexed record i on the pending list, releasing the list first if full.
func giveUp(sh *shard, i uint32) {
	if sh.hdr.nPending >= pendingCap {
		releasePending(sh)
	}
	sh.hdr.pending[sh.hdr.nPending] = i
	sh.hdr.nPending++
}

// releasePending clears the bits of the pending records.
func releasePending(sh *shard) {
	releaseList(sh, sh.hdr.pending[:min(sh.hdr.nPending, pendingCap)])
	sh.hdr.nPending = 0
}

// releaseAll clears the bits of the pending and reserved records, so that afterwards a set
// bit means an indexed record.
func releaseAll(sh *shard) {
	releasePending(sh)
	releaseList(sh, sh.hdr.reserved[:min(sh.hdr.nReserved, reserveCap)])
	sh.hdr.nReserved = 0
}

// releaseList clears the bits of the listed records that lie in the shard.
func releaseList(sh *shard, list []uint32) {
	for _, i := range list {
		if i < sh.count {
			markFree(sh, i)
		}
	}
}

// refill releases the pending records and reserves up to reserveCap free records at or
// after the cursor, wrapping around. It reports whether it found any. The list is written
// before the bits are set, so a writer that dies in between leaves records that are free.
func refill(sh *shard) bool {
	releasePending(sh)
	var found [reserveCap]uint32
	n := 0
	words := usedWords(sh.count)
	start := sh.hdr.cursor
	if start >= sh.count {
		start = 0
	}
	w := start / 64
	free := ^*usedWord(sh, w) &^ (1<<(start%64) - 1)
	for range words + 1 {
		for free != 0 && n < reserveCap {
			i := w*64 + uint32(bits.TrailingZeros64(free))
			if i >= sh.count {
				break // bits past the last record
			}
			found[n] = i
			n++
			free &= free - 1
		}
		if n == reserveCap {
			break
		}
		if w++; w == words {
			w = 0
		}
		free = ^*usedWord(sh, w)
		if w == start/64 {
			free &= 1<<(start%64) - 1 // the part of the first word before start
		}
	}
	if n == 0 {
		return false
	}
	for k := range n {
		sh.hdr.reserved[n-1-k] = found[k] // lowest last: taken first
	}
	sh.hdr.nReserved = uint16(n)
	for _, i := range found[:n] {
		markUsed(sh, i)
	}
	sh.hdr.cursor = found[n-1] + 1
	return true
}
