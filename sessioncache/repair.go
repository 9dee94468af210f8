package sessioncache

// repair rebuilds a shard that a dead writer left half-changed. The records whose bits are
// set and that are on neither the reserved nor the pending list are the truth: one is kept
// only if it is live and whole (lengths in range, its key hashing to this shard, no other
// kept record with its key); every other record becomes free. The index, the bitmap, both
// lists, the live count and the minimum expiry are then rebuilt from them. The caller holds
// the lock with the sequence odd. A record the dead writer was writing is in state "writing"
// and is dropped, so no torn value survives; of an entry it was updating out of place it
// leaves the old version, or both whole versions (one is kept), or only the new one once
// the old is pending (see used.go).
func (t *Table) repair(sh *shard) {
	for i := range sh.nslots {
		*slot(sh, i) = 0
	}
	releaseAll(sh) // listed records are not candidates
	var wasUsed []uint64
	for w := range usedWords(sh.count) {
		wasUsed = append(wasUsed, *usedWord(sh, w))
		*usedWord(sh, w) = 0
	}
	var live uint32
	var minExp int64
	for i := sh.count; i > 0; i-- {
		idx := i - 1
		if wasUsed[idx/64]&(1<<(idx%64)) == 0 {
			continue
		}
		r := t.record(sh, idx)
		if r.state != stateLive {
			continue
		}
		tag, ok := t.recordTag(sh, r)
		if !ok {
			continue
		}
		if pos, same, ok := t.probeKey(sh, tag, t.keyBytes(r)); ok && *slot(sh, pos) == 0 {
			if same {
				sh.hdr.sameTags++
			}
			*slot(sh, pos) = makeSlot(tag, idx)
			markUsed(sh, idx)
			live++
			if r.expiry != 0 && (minExp == 0 || r.expiry < minExp) {
				minExp = r.expiry
			}
		}
	}
	sh.hdr.live = live
	sh.hdr.minExpiry = minExp
	sh.hdr.hand %= sh.count
	sh.hdr.cursor %= sh.count
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
