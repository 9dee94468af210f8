package sessioncache

import "unsafe"

// The section layout (all integers little-endian, as the host writes them):
//
//	offset 0                 tableHeader (128 bytes)
//	offset 128               shardHeader x shards (128 bytes each)
//	bucketsOff (64-aligned)  uint32 x el_count: bucket heads, shard by shard
//	recordsOff (8-aligned)   record x el_count: 32-byte recordHeader + record_size bytes,
//	                         padded to 8 bytes, shard by shard
//
// Shard i owns records [start(i), start(i)+count(i)) and the same range of buckets, where the
// el_count records are split as evenly as possible. Links (bucket heads, next) are shard-local
// record indexes plus one; zero is nil.

const (
	sectionMagic  = "GSESSTBL"
	layoutVersion = 1
	readyValue    = 0x52454459 // "REDY": the creator finished laying out the section

	tableHeaderSize  = 128
	shardHeaderSize  = 128
	recordHeaderSize = 32
	bucketSize       = 4
)

// Record states. A record is free, being written (dropped by repair), or live.
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
	_          [64]byte
}

// shardHeader holds one shard's lock, sequence counter, allocation state and statistics.
// The first cache line is written by writers only; the second mostly by readers (hit and
// miss counters), so readers never dirty the line that holds the sequence counter.
type shardHeader struct {
	lock       uint64 // 0 or the owner word (pid<<32 | start-time token)
	seq        uint64 // odd while a writer is changing the shard
	live       uint32 // records in stateLive
	freeHead   uint32 // free list (shard-local index+1)
	hand       uint32 // CLOCK hand (shard-local index)
	_          uint32
	sets       uint64
	deletes    uint64
	evictions  uint64 // unexpired entries pushed out
	minExpiry  int64  // no live entry expires before this; 0 when none expires

	hits       uint64
	misses     uint64
	expired    uint64 // expired entries reclaimed (by writers, rarely)
	recoveries uint64 // locks taken over from dead processes
	_          [4]uint64
}

// recordHeader precedes each record's key and value bytes.
type recordHeader struct {
	state  uint32 // stateFree, stateWriting or stateLive
	ref    uint32 // CLOCK reference bit, set by readers
	hash   uint32 // low 32 bits of the key's hash
	valLen uint32
	expiry int64  // unix nanoseconds; 0 means no expiry
	next   uint32 // next record in the bucket chain or free list (index+1)
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
	bucketsOff uint64
	recordsOff uint64
	total      uint64
}

func align(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func layoutFor(s shape) layout {
	var l layout
	l.stride = recordHeaderSize + align(uint64(s.recordSize), 8)
	l.bucketsOff = align(tableHeaderSize+uint64(s.shards)*shardHeaderSize, 64)
	l.recordsOff = align(l.bucketsOff+uint64(s.elCount)*bucketSize, 8)
	l.total = l.recordsOff + uint64(s.elCount)*l.stride
	return l
}

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

// shapeOf reads the shape stored in a header.
func (h *tableHeader) shape() shape {
	return shape{elCount: h.elCount, recordSize: h.recordSize, maxKey: h.maxKey, seed: h.seed, shards: h.shards}
}
