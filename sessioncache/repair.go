package sessioncache

// repair rebuilds a shard that a dead writer left half-changed. The records are the truth:
// a record is kept only if it is live and whole (lengths in range, its key hashing to this
// shard, no other kept record with its tag); every other record becomes free. The index, the
// free list, the live count and the minimum expiry are then rebuilt from them. The caller
// holds the lock with the sequence odd. A record the dead writer was filling is in state
// "writing" and is dropped, so no torn value survives.
func (t *Table) repair(sh *shard) {
	for i := range sh.nslots {
		*slot(sh, i) = 0
	}
	sh.hdr.freeHead = 0
	var live uint32
	var minExp int64
	for i := sh.count; i > 0; i-- {
		r := t.record(sh, i-1)
		if r.state == stateLive {
			if tag, ok := t.recordTag(sh, r); ok {
				if pos, s, ok := probeTag(sh, tag); ok && s == 0 {
					*slot(sh, pos) = makeSlot(tag, i-1)
					live++
					if r.expiry != 0 && (minExp == 0 || r.expiry < minExp) {
						minExp = r.expiry
					}
					continue
				}
			}
		}
		t.pushFree(sh, i-1, r)
	}
	sh.hdr.live = live
	sh.hdr.minExpiry = minExp
	sh.hdr.hand %= sh.count
}

// recordTag returns the tag of r's key and whether r's lengths are in range and its key
// belongs to shard sh.
func (t *Table) recordTag(sh *shard, r *recordHeader) (uint64, bool) {
	klen := uint32(r.keyLen)
	if klen == 0 || klen > t.shape.maxKey || r.valLen > t.shape.recordSize || klen+r.valLen > t.shape.recordSize {
		return 0, false
	}
	s, tag := t.locate(t.hash(t.keyBytes(r)))
	return tag, s == sh
}
