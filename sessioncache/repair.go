package sessioncache

import (
	"bytes"
	"sync/atomic"
)

// repair rebuilds a shard that a dead writer left half-changed. The records are the truth:
// a record is kept only if it is live and whole (lengths in range, stored hash equal to its
// key's hash, its key not already kept); every other record becomes free. Buckets, chains,
// the free list and the live count are then rebuilt from them. The caller holds the lock
// with the sequence odd. A record the dead writer was filling is in state "writing" and is
// dropped, so no torn value survives.
func (t *Table) repair(sh *shard) {
	for b := uint32(0); b < sh.count; b++ {
		*bucket(sh, b) = 0
	}
	var live, freeHead uint32
	var minExp int64
	for i := sh.count; i > 0; i-- {
		r := t.record(sh, i-1)
		if r.state == stateLive && t.recordWhole(sh, r) && !t.chainHas(sh, r) {
			head := bucket(sh, bucketOf(sh, r.hash))
			r.next = *head
			*head = i
			live++
			if r.expiry != 0 && (minExp == 0 || r.expiry < minExp) {
				minExp = r.expiry
			}
			continue
		}
		atomic.StoreUint32(&r.state, stateFree)
		atomic.StoreUint32(&r.ref, 0)
		r.next = freeHead
		freeHead = i
	}
	sh.hdr.live = live
	sh.hdr.freeHead = freeHead
	sh.hdr.minExpiry = minExp
	sh.hdr.hand %= sh.count
}

// recordWhole reports whether r's lengths are in range and its key hashes to its stored hash
// in this shard.
func (t *Table) recordWhole(sh *shard, r *recordHeader) bool {
	klen := uint32(r.keyLen)
	if klen == 0 || klen > t.shape.maxKey || r.valLen > t.shape.recordSize || klen+r.valLen > t.shape.recordSize {
		return false
	}
	h := t.hash(t.keyBytes(r))
	s, _ := t.locate(h)
	return s == sh && uint32(h) == r.hash
}

// chainHas reports whether r's bucket chain already holds a record with r's key.
func (t *Table) chainHas(sh *shard, r *recordHeader) bool {
	key := t.keyBytes(r)
	for idx := *bucket(sh, bucketOf(sh, r.hash)); idx != 0; {
		o := t.record(sh, idx-1)
		if o.keyLen == r.keyLen && bytes.Equal(t.keyBytes(o), key) {
			return true
		}
		idx = o.next
	}
	return false
}
