package sessioncache

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Eviction is CLOCK, an approximation of LRU chosen because it lets readers record use
// without a lock: a Get sets the record's reference bit (only if it was clear, so hot records
// cost no write at all). When a shard has no free record, it first reclaims its expired
// entries if its minimum expiry says there are some, so no unexpired entry is pushed out
// while an expired one holds space. Otherwise its hand sweeps the shard's records: a
// referenced one has its bit cleared and is passed over; the first unreferenced one is
// evicted. New entries start unreferenced, so an entry read since it was written outlives
// one that was not. LRU order holds per shard.

// evicted carries an entry pushed out by a Set to the OnEvict callback, outside the lock.
type evicted struct {
	ok     bool
	keyLen int
	expiry int64
	buf    []byte
}

func (t *Table) evictBuf() *evicted {
	if e, ok := t.evictBufs.Get().(*evicted); ok {
		e.ok = false
		return e
	}
	return &evicted{buf: make([]byte, 0, t.shape.recordSize)}
}

// allocate returns an unindexed shard-local record for a new entry, with its bit set: a free
// one, or one whose entry it evicts when the shard is full. With ev non-nil an evicted
// unexpired entry is copied into it. The caller fills and indexes the record. With tryFree
// false the caller has just found the shard without a free record, so that search is not
// repeated.
func (t *Table) allocate(sh *shard, now int64, ev *evicted, tryFree bool) uint32 {
	if tryFree {
		if i, ok := t.takeFree(sh); ok {
			return i
		}
	}
	if sh.hdr.minExpiry != 0 && sh.hdr.minExpiry <= now {
		t.reclaimExpired(sh, now)
		if i, ok := t.takeFree(sh); ok {
			return i
		}
	}
	// The shard is full: takeFree released the pending records and found none free, so
	// every record with its bit set is indexed.
	n := sh.count
	hand := sh.hdr.hand % n
	// Readers may set reference bits while the hand sweeps, so bound the sweep: after two
	// full turns take whatever is under the hand.
	for turn := uint32(0); ; turn++ {
		i := hand
		if hand++; hand == n {
			hand = 0
		}
		if !inUse(sh, i) {
			sh.hdr.hand = hand
			markUsed(sh, i)
			return i // only if the section was damaged; Verify reports it
		}
		r := t.record(sh, i)
		if atomic.LoadUint32(&r.ref) != 0 && turn < 2*n {
			r.ref = 0 // a hint: a racing reader that sets it again only saves the record
			continue
		}
		sh.hdr.hand = hand
		if t.beforeEvict != nil || t.beforeReclaim != nil {
			t.callBeforeEvict(r)
		}
		t.unindex(sh, i, r)
		sh.hdr.evictions++
		if ev != nil {
			ev.ok = true
			ev.keyLen = int(r.keyLen)
			ev.expiry = r.expiry
			ev.buf = append(ev.buf[:0], unsafe.Slice((*byte)(t.recordData(r)), uint32(r.keyLen)+r.valLen)...)
		}
		sh.hdr.live--
		return i
	}
}

// callBeforeEvict hands an entry that is about to be evicted to BeforeEvict (an unexpired
// one) or BeforeReclaim (an expired one), while it is still indexed and whole.
func (t *Table) callBeforeEvict(r *recordHeader) {
	expired := r.expiry != 0 && r.expiry <= t.now()
	if expired {
		t.callBeforeReclaim(r)
		return
	}
	if t.beforeEvict == nil {
		return
	}
	data := unsafe.Slice((*byte)(t.recordData(r)), uint32(r.keyLen)+r.valLen)
	var e time.Time
	if r.expiry != 0 {
		e = time.Unix(0, r.expiry)
	}
	t.beforeEvict(data[:r.keyLen], data[r.keyLen:], e)
}

// callBeforeReclaim hands an expired entry whose record is about to be freed to
// BeforeReclaim, while it is still indexed and whole.
func (t *Table) callBeforeReclaim(r *recordHeader) {
	if t.beforeReclaim == nil {
		return
	}
	data := unsafe.Slice((*byte)(t.recordData(r)), uint32(r.keyLen)+r.valLen)
	t.beforeReclaim(data[:r.keyLen], data[r.keyLen:], time.Unix(0, r.expiry))
}
