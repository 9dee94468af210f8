package sessioncache

import "unsafe"

// The section layout (integers in the host's byte order):
//
//	offset 0               tableHeader (128 bytes)
//	offset 128             shardHeader x shards (192 bytes each)
//	slotsOff (64-aligned)  uint64 slots, shard by shard: the index
//	usedOff (8-aligned)    uint64 words, shard by shard: the in-use bitmap, one bit per record
//	recordsOff (8-aligned) records, shard by shard: a 24-byte recordHeader, then key and value
//	                       in record_size bytes padded to 8
//
// A record's bit (bit i%64 of word i/64 of its shard's bitmap) is set while it is indexed,
// reserved for a coming write or pending release (the shard header's short lists, see
// used.go); a record is free when its bit is clear, and then its content means nothing.
// Giving a record up leaves it as it was, so a Delete or an update never writes to the
// record it gives up.
// Shard i owns count(i) records, the el_count records split as evenly as possible, and
// slotCount(count(i)) = count + count/4 + 1 slots, so the index is never full.
//
// The index is open addressing with linear probing. A slot is 0 when empty, else the low 40
// bits of the key's hash (the tag) in its high 40 bits and the shard-local record index plus
// one in its low 24 bits. A key's probe starts at its home slot, fastrange(low 32 bits of the
// hash, slotCount); since those bits are part of the tag, a slot's home is known without
// reading its record, which deletion (backward shift) and repair rely on. Two keys of a
// shard may share a tag (SetIf gives each its own slot, and the shard header's sameTags
// counts such slots' creation); a shard whose sameTags is zero holds no tag twice. A build
// from before sameTags left that field zero and never indexed a tag twice.

const (
	sectionMagic  = "GSESSTBL"
	layoutVersion = 2
	readyValue    = 0x52454459 // "REDY": the creator finished laying out the section

	tableHeaderSize  = 128
	shardHeaderSize  = 192
	recordHeaderSize = 24
	slotSize         = 8

	slotIndexBits = 24
	slotIndexMask = 1<<slotIndexBits - 1
	tagMask       = 1<<40 - 1
	// maxShardRecords is the most records one shard can index.
	maxShardRecords = slotIndexMask - 1
)

// Record states. An in-use record is being written (dropped by repair) or live; a record
// that is not in use may hold any state.
const (
	stateFree    = 0
	stateWriting = 1
	stateLive    = 2
)

// tableHeader is the first 128 bytes of a section.
type tableHeader struct {
	magic      [8]byte
	version    uint32
	ready      uint32 // readyValue once laid out; written last
	elCount    uint32
	recordSize uint32
	maxKey     uint32
	shards     uint32
	seed       uint64
	total      uint64 // section size in bytes
	creatorPID uint32
	stride     uint32
	created    int64 // unix nanoseconds
	// stream records how far the table has applied the change streams of up to two relays
	// (see Manager): written under shard 0's lock.
	stream [streamSlots]streamSlot
	_      [16]byte
}

// streamSlots is how many relays' stream positions a section records.
const streamSlots = 2

// streamSlot is a relay's stream position as a table records it.
type streamSlot struct {
	relay uint64 // a hash of the relay's name; 0 for an unused slot
	epoch uint64
	seq   uint64
}

// shardHeader holds one shard's lock, sequence counter, allocation state and statistics in
// three cache lines. The first holds everything a Set writes (lock, sequence, counters and
// the reserved and pending records, see used.go), so that a Set that finds it in another
// processor's cache moves one line, not several; the second what writers change rarely; the
// third the hit and miss counters that readers write, so readers never dirty a writer's line.
type shardHeader struct {
	lock      uint64 // 0 or the owner word (pid<<32 | start-time token)
	seq       uint64 // odd while a writer is changing the shard
	sets      uint64
	live      uint32 // indexed records
	cursor    uint32 // where the search for free records starts (shard-local index)
	nReserved uint16
	nPending  uint16
	reserved  [reserveCap]uint32 // free records taken for the next writes, lowest last
	pending   [pendingCap]uint32 // records given up, not yet cleared in the bitmap

	hand       uint32 // CLOCK hand (shard-local index)
	sameTags   uint32 // times a key was indexed after another key's slot with its tag; sticky
	deletes    uint64
	evictions  uint64 // unexpired entries pushed out
	minExpiry  int64  // no live entry expires before this; 0 when none expires
	expired    uint64 // expired entries reclaimed (by writers, rarely)
	recoveries uint64 // locks taken over from dead processes
	_          [2]uint64

	hits   uint64
	misses uint64
	_      [6]uint64
}

// The sizes of a shard's reserved and pending lists, which fill its first cache line.
const (
	reserveCap = 4
	pendingCap = 3
)

// recordHeader precedes each record's key and value bytes.
type recordHeader struct {
	state  uint32 // stateWriting or stateLive while in use
	ref    uint32 // CLOCK reference bit, set by readers
	expiry int64  // unix nanoseconds; 0 means no expiry
	valLen uint32 // value length
	keyLen uint16
	_      uint16
}

var (
	_ [tableHeaderSize - unsafe.Sizeof(tableHeader{})]byte
	_ [unsafe.Sizeof(tableHeader{}) - tableHeaderSize]byte
	_ [shardHeaderSize - unsafe.Sizeof(shardHeader{})]byte
	_ [unsafe.Sizeof(shardHeader{}) - shardHeaderSize]byte
	_ [recordHeaderSize - unsafe.Sizeof(recordHeader{})]byte
	_ [unsafe.Sizeof(recordHeader{}) - recordHeaderSize]byte
)

// layout holds the offsets derived from a shape.
type layout struct {
	stride     uint64 // bytes per record, header included
	slotsOff   uint64
	usedOff    uint64
	recordsOff uint64
	total      uint64
}

func align(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// slotCount is the number of index slots of a shard with count records.
func slotCount(count uint32) uint32 { return count + count/4 + 1 }

func layoutFor(s shape) layout {
	var l layout
	l.stride = recordHeaderSize + align(uint64(s.recordSize), 8)
	l.slotsOff = align(tableHeaderSize+uint64(s.shards)*shardHeaderSize, 64)
	var slots, words uint64
	for i := range s.shards {
		_, count := shardRange(s, i)
		slots += uint64(slotCount(count))
		words += uint64(usedWords(count))
	}
	l.usedOff = l.slotsOff + slots*slotSize
	l.recordsOff = l.usedOff + words*8
	l.total = l.recordsOff + uint64(s.elCount)*l.stride
	return l
}

// usedWords is the number of bitmap words of a shard with count records.
func usedWords(count uint32) uint32 { return (count + 63) / 64 }

// shardRange returns the first record and the record count of shard i.
func shardRange(s shape, i uint32) (start, count uint32) {
	base, rem := s.elCount/s.shards, s.elCount%s.shards
	start = i*base + min(i, rem)
	count = base
	if i < rem {
		count++
	}
	return start, count
}

// shape reads the shape stored in a header.
func (h *tableHeader) shape() shape {
	return shape{elCount: h.elCount, recordSize: h.recordSize, maxKey: h.maxKey, seed: h.seed, shards: h.shards}
}
