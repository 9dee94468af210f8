package sessioncache

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Verify checks every invariant of the section's layout, one shard at a time under its lock
// (recovering locks left by dead processes first): the header; every index slot pointing in
// range to a live, whole record whose key has the slot's tag and is reachable from its home
// slot, with no tag twice; the free list's links in range, acyclic, through free records;
// every record either indexed or free, exactly once; the live count, the CLOCK hand and the
// minimum expiry. It returns nil or an error wrapping ErrCorrupt that lists each violation.
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
		case r.state != stateLive:
			bad("record %d in slot %d is in state %d, not live", idx, i, r.state)
		case !whole:
			bad("record %d in slot %d has bad lengths or a key of another shard", idx, i)
		case tag != sl>>slotIndexBits:
			bad("slot %d has tag %#x, its record's key has %#x", i, sl>>slotIndexBits, tag)
		case r.expiry != 0 && (sh.hdr.minExpiry == 0 || r.expiry < sh.hdr.minExpiry):
			bad("record %d expires at %d, before the shard's minimum expiry %d", idx, r.expiry, sh.hdr.minExpiry)
		default:
			if pos, _, ok := probeTag(sh, tag); !ok || pos != i {
				bad("slot %d is not where a probe for its tag ends (%d): unreachable or a repeated tag", i, pos)
			}
		}
	}
	if empty == 0 {
		bad("the index has no empty slot")
	}
	for idx, n := sh.hdr.freeHead, uint32(0); idx != 0; n++ {
		if idx > sh.count {
			bad("free list links to record %d of %d", idx-1, sh.count)
			break
		}
		i := idx - 1
		if seen[i] {
			bad("record %d is reached twice (free list)", i)
			break
		}
		seen[i] = true
		r := t.record(sh, i)
		if r.state != stateFree {
			bad("record %d on the free list is in state %d", i, r.state)
		}
		idx = r.valLen
	}
	for i, ok := range seen {
		if !ok {
			bad("record %d is neither indexed nor on the free list", i)
		}
	}
	if live != sh.hdr.live {
		bad("live count is %d, the index holds %d", sh.hdr.live, live)
	}
	if sh.hdr.hand >= sh.count {
		bad("clock hand %d is past the last record %d", sh.hdr.hand, sh.count-1)
	}
	return errs
}
