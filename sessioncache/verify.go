package sessioncache

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Verify checks every invariant of the section's layout, one shard at a time under its lock
// (recovering locks left by dead processes first): the header; every index slot pointing in
// range to a live, whole record whose key has the slot's tag and is reachable from its home
// slot, with no key twice (and a tag twice only in a shard that records it); the reserved
// and pending lists in range, with their records' bits set, unindexed and listed once;
// every record whose bit is set indexed exactly once or listed, and every indexed record's
// bit set, with no bit set past the last record; the live count, the CLOCK hand, the
// allocation cursor and the minimum expiry. It returns nil or an error wrapping ErrCorrupt
// that lists each violation.
func (t *Table) Verify() error {
	if t.closed.Load() {
		return ErrClosed
	}
	var errs []error
	h := t.hdr
	if string(h.magic[:]) != sectionMagic || atomic.LoadUint32(&h.ready) != readyValue ||
		h.version != layoutVersion || h.shape() != t.shape {
		errs = append(errs, errors.New("header changed since the section was opened"))
	}
	for s := range t.shards {
		sh := &t.shards[s]
		t.lockShard(sh)
		errs = append(errs, t.verifyShard(s, sh)...)
		t.unlockShard(sh)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, t.path, errors.Join(errs...))
}

func (t *Table) verifyShard(s int, sh *shard) []error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf("shard %d: "+format, append([]any{s}, args...)...))
		}
	}
	seen := make([]bool, sh.count)
	var live, empty uint32
	for i := range sh.nslots {
		sl := *slot(sh, i)
		if sl == 0 {
			empty++
			continue
		}
		idx, ok := slotRecord(sh, sl)
		if !ok {
			bad("slot %d points to record %d of %d", i, sl&slotIndexMask, sh.count)
			continue
		}
		if seen[idx] {
			bad("record %d is indexed twice (slot %d)", idx, i)
			continue
		}
		seen[idx] = true
		live++
		r := t.record(sh, idx)
		tag, whole := t.recordTag(sh, r)
		switch {
		case !inUse(sh, idx):
			bad("record %d in slot %d has its bit clear", idx, i)
		case r.state != stateLive:
			bad("record %d in slot %d is in state %d, not live", idx, i, r.state)
		case !whole:
			bad("record %d in slot %d has bad lengths or a key of another shard", idx, i)
		case tag != sl>>slotIndexBits:
			bad("slot %d has tag %#x, its record's key has %#x", i, sl>>slotIndexBits, tag)
		case r.expiry != 0 && (sh.hdr.minExpiry == 0 || r.expiry < sh.hdr.minExpiry):
			bad("record %d expires at %d, before the shard's minimum expiry %d", idx, r.expiry, sh.hdr.minExpiry)
		default:
			if pos, same, ok := t.probeKey(sh, tag, t.keyBytes(r)); !ok || pos != i {
				bad("slot %d is not where a probe for its key ends (%d): unreachable or a repeated key", i, pos)
			} else if same && sh.hdr.sameTags == 0 {
				bad("slot %d follows another key's slot with its tag, which the shard does not record (sameTags)", i)
			}
		}
	}
	if empty == 0 {
		bad("the index has no empty slot")
	}
	listed := make([]bool, sh.count)
	checkList := func(name string, list []uint32, n, limit uint16) {
		if n > limit {
			bad("the %s list holds %d records, at most %d fit", name, n, limit)
			return
		}
		for _, i := range list[:n] {
			switch {
			case i >= sh.count:
				bad("the %s list holds record %d of %d", name, i, sh.count)
			case seen[i]:
				bad("record %d is on the %s list and indexed", i, name)
			case listed[i]:
				bad("record %d is listed twice (%s list)", i, name)
			case !inUse(sh, i):
				bad("record %d is on the %s list with its bit clear", i, name)
			default:
				listed[i] = true
			}
		}
	}
	checkList("reserved", sh.hdr.reserved[:], sh.hdr.nReserved, reserveCap)
	checkList("pending", sh.hdr.pending[:], sh.hdr.nPending, pendingCap)
	for i, indexed := range seen {
		if inUse(sh, uint32(i)) && !indexed && !listed[i] {
			bad("record %d is marked in use but neither indexed nor listed", i)
		}
	}
	if tail := sh.count % 64; tail != 0 && *usedWord(sh, usedWords(sh.count)-1)>>tail != 0 {
		bad("the in-use bitmap has bits set past the last record %d", sh.count-1)
	}
	if live != sh.hdr.live {
		bad("live count is %d, the index holds %d", sh.hdr.live, live)
	}
	if sh.hdr.hand >= sh.count {
		bad("clock hand %d is past the last record %d", sh.hdr.hand, sh.count-1)
	}
	if sh.hdr.cursor > sh.count {
		bad("allocation cursor %d is past the record count %d", sh.hdr.cursor, sh.count)
	}
	return errs
}
