package sessioncache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/edsrzf/mmap-go"

	"github.com/globalsession/globalsession/internal/wallclock"
)

// Table is a fixed-size LRU table of keys and values in a memory-mapped file that several
// processes on one host share. One process creates the section, the others attach to it;
// all of them read and write it concurrently.
//
// Every method is safe for concurrent use by many goroutines, except Close, which must be
// called once every other call on this Table has returned (other processes are unaffected).
type Table struct {
	path      string
	file      *os.File
	mem       mmap.MMap
	base      unsafe.Pointer
	hdr       *tableHeader
	shape     shape
	stride    uintptr
	shards    []shard
	shardBits uint
	owner     uint64
	onEvict   func(key, value []byte, expiry time.Time)
	// beforeEvict is Config.BeforeEvict.
	beforeEvict func(key, value []byte, expiry time.Time)
	// beforeReclaim is Config.BeforeReclaim.
	beforeReclaim func(key, value []byte, expiry time.Time)
	logger        *slog.Logger
	now           func() int64 // unix nanoseconds; replaced by tests
	closed        atomic.Bool
	evictBufs     sync.Pool
}

// shard is this process's view of one shard: pointers into the section and its sizes.
type shard struct {
	hdr     *shardHeader
	slots   unsafe.Pointer // first uint64 index slot of the shard
	used    unsafe.Pointer // first uint64 word of the shard's in-use bitmap
	records unsafe.Pointer // first record of the shard
	count   uint32         // records in the shard
	nslots  uint32         // index slots in the shard
	reads   *readCounts    // this process's Gets of the shard not yet added to its header
	hot     atomic.Uint32  // how often this process's updates found recent records (see noteUpdate)
}

// Open creates or attaches to the section that cfg names. With cfg.Create it lays out a new
// section (or reuses one of the same shape); without it, it attaches to an existing one and
// checks that the header matches every non-zero shape field of cfg.
func Open(cfg Config) (*Table, error) {
	if !platformSupported {
		return nil, ErrUnsupported
	}
	owner, err := selfOwnerWord()
	if err != nil {
		return nil, err
	}
	path := cfg.resolvedPath()
	var t *Table
	if cfg.Create {
		t, err = create(path, &cfg)
	} else {
		t, err = attach(path, &cfg)
	}
	if err != nil {
		return nil, err
	}
	t.owner = owner
	t.onEvict = cfg.OnEvict
	t.beforeEvict = cfg.BeforeEvict
	t.beforeReclaim = cfg.BeforeReclaim
	t.logger = cfg.Logger
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	t.now = wallclock.Nanos
	if cfg.Prefault {
		t.prefault()
		if cfg.Logger != nil {
			// Every page is mapped now, so this says what the file system gave the section.
			if huge, err := t.HugePageBytes(); err == nil {
				cfg.Logger.Info("sessioncache: pages", "path", path, "bytes", len(t.mem), "on_huge_pages", huge)
			}
		}
	}
	return t, nil
}

// create lays out a new section at path, or reuses a compatible one already there.
func create(path string, cfg *Config) (*Table, error) {
	want, err := cfg.createShape()
	if err != nil {
		return nil, err
	}
	var replaced error // why the file already there is replaced
	if t, err := mapSection(path); err == nil {
		err := sameShape(path, t.shape, want)
		if err == nil {
			return t, nil
		}
		t.unmap()
		if !cfg.Replace {
			return nil, err
		}
		replaced = err
	} else if !errors.Is(err, os.ErrNotExist) {
		if !cfg.Replace {
			return nil, fmt.Errorf("%w (set Replace to overwrite it)", err)
		}
		replaced = err
	}

	mode := cfg.FileMode
	if mode == 0 {
		mode = DefaultFileMode
	}
	l := layoutFor(want)
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, fmt.Errorf("sessioncache: create table %s: %w", path, err)
	}
	defer os.Remove(tmp) // after the link or rename below it names nothing we need
	if err := f.Truncate(int64(l.total)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sessioncache: create table %s: size %d: %w", path, l.total, err)
	}
	mem, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sessioncache: create table %s: map: %w", path, err)
	}
	t := newTable(path, f, mem, want)
	t.initialize()

	// Publish the finished section under its name. Without Replace, link fails if another
	// creator got there first; then use theirs if it has our shape.
	if cfg.Replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if err != nil {
		t.unmap()
		if errors.Is(err, os.ErrExist) {
			other, aerr := mapSection(path)
			if aerr != nil {
				return nil, aerr
			}
			if serr := sameShape(path, other.shape, want); serr != nil {
				other.unmap()
				return nil, serr
			}
			return other, nil
		}
		return nil, fmt.Errorf("sessioncache: create table %s: %w", path, err)
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("sessioncache: created table", "path", path, "el_count", want.elCount,
			"record_size", want.recordSize, "shards", want.shards, "bytes", l.total)
		if replaced != nil {
			cfg.Logger.Warn("sessioncache: replaced the file that was there", "path", path, "because", replaced.Error())
		}
	}
	return t, nil
}

// attach maps an existing section and checks it against cfg.
func attach(path string, cfg *Config) (*Table, error) {
	t, err := mapSection(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sessioncache: attach table %s: no section (is its creator running?): %w", path, err)
		}
		return nil, err
	}
	if err := cfg.checkAttach(path, t.shape); err != nil {
		t.unmap()
		return nil, err
	}
	return t, nil
}

// mapSection opens and maps the section at path and validates its header.
func mapSection(path string) (*Table, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("sessioncache: open table %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sessioncache: open table %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotTable, path)
	}
	size := fi.Size()
	if size < tableHeaderSize {
		f.Close()
		return nil, fmt.Errorf("%w: %s is truncated: %d bytes, a header needs %d", ErrNotTable, path, size, tableHeaderSize)
	}
	mem, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sessioncache: open table %s: map: %w", path, err)
	}
	h := (*tableHeader)(unsafe.Pointer(&mem[0]))
	fail := func(format string, args ...any) (*Table, error) {
		err := fmt.Errorf("%w: %s: %s", ErrNotTable, path, fmt.Sprintf(format, args...))
		mem.Unmap() // only after formatting: args may point into the mapping
		f.Close()
		return nil, err
	}
	if string(h.magic[:]) != sectionMagic {
		return fail("bad magic %q, want %q", h.magic[:], sectionMagic)
	}
	if h.version != layoutVersion {
		return fail("layout version %d, this library reads %d", h.version, layoutVersion)
	}
	if atomic.LoadUint32(&h.ready) != readyValue {
		return fail("section was never finished by its creator")
	}
	s := h.shape()
	switch {
	case s.elCount == 0 || s.elCount > MaxElementCount:
		return fail("el_count %d out of range", s.elCount)
	case s.recordSize == 0 || s.recordSize > MaxRecordSize:
		return fail("record_size %d out of range", s.recordSize)
	case s.maxKey == 0 || s.maxKey > MaxKeyLimit || s.maxKey > s.recordSize:
		return fail("max_key_size %d out of range", s.maxKey)
	case s.shards == 0 || s.shards > MaxShards || s.shards&(s.shards-1) != 0 || s.shards > s.elCount ||
		(s.elCount+s.shards-1)/s.shards > maxShardRecords:
		return fail("shards %d invalid for el_count %d", s.shards, s.elCount)
	}
	l := layoutFor(s)
	if h.total != l.total || uint64(h.stride) != l.stride {
		return fail("header says %d bytes with stride %d, its shape needs %d with stride %d", h.total, h.stride, l.total, l.stride)
	}
	if uint64(size) != l.total {
		return fail("truncated or extended: file has %d bytes, its header needs %d", size, l.total)
	}
	return newTable(path, f, mem, s), nil
}

// newTable builds the process-local view of a mapped section.
func newTable(path string, f *os.File, mem mmap.MMap, s shape) *Table {
	adviseHugePages(mem) // before the creator's first write; see hugepages.go
	l := layoutFor(s)
	t := &Table{
		path:   path,
		file:   f,
		mem:    mem,
		base:   unsafe.Pointer(&mem[0]),
		shape:  s,
		stride: uintptr(l.stride),
		shards: make([]shard, s.shards),
	}
	t.hdr = (*tableHeader)(t.base)
	for s.shards>>t.shardBits > 1 {
		t.shardBits++
	}
	slotOff, usedOff := uintptr(l.slotsOff), uintptr(l.usedOff)
	reads := make([]readCounts, len(t.shards))
	for i := range t.shards {
		start, count := shardRange(s, uint32(i))
		t.shards[i] = shard{
			hdr:     (*shardHeader)(unsafe.Add(t.base, tableHeaderSize+i*shardHeaderSize)),
			slots:   unsafe.Add(t.base, slotOff),
			used:    unsafe.Add(t.base, usedOff),
			records: unsafe.Add(t.base, uintptr(l.recordsOff)+uintptr(start)*t.stride),
			count:   count,
			nslots:  slotCount(count),
			reads:   &reads[i],
		}
		slotOff += uintptr(slotCount(count)) * slotSize
		usedOff += uintptr(usedWords(count)) * 8
	}
	return t
}

// initialize lays out a fresh (zero-filled) section, in which every record is free and
// every index slot empty: it writes the header, the ready word last.
func (t *Table) initialize() {
	h := t.hdr
	h.version = layoutVersion
	h.elCount, h.recordSize, h.maxKey = t.shape.elCount, t.shape.recordSize, t.shape.maxKey
	h.shards, h.seed = t.shape.shards, t.shape.seed
	h.total = layoutFor(t.shape).total
	h.stride = uint32(t.stride)
	h.creatorPID = uint32(os.Getpid())
	h.created = time.Now().UnixNano()
	copy(h.magic[:], sectionMagic)
	atomic.StoreUint32(&h.ready, readyValue)
}

// Path returns the section file.
func (t *Table) Path() string { return t.path }

// Capacity returns the number of records (el_count).
func (t *Table) Capacity() int { return int(t.shape.elCount) }

// RecordSize returns the bytes of key plus value one record holds.
func (t *Table) RecordSize() int { return int(t.shape.recordSize) }

// MaxKeySize returns the longest key the table accepts, in bytes.
func (t *Table) MaxKeySize() int { return int(t.shape.maxKey) }

// Seed returns the hash seed of the section.
func (t *Table) Seed() uint64 { return t.shape.seed }

// SectionSize returns the size of the section file in bytes.
func (t *Table) SectionSize() int64 { return int64(len(t.mem)) }

// Close unmaps the section. The section itself stays for the other processes; Remove
// deletes its name. Close must not run concurrently with other calls on this Table.
func (t *Table) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.publishReads()
	return t.unmap()
}

// Remove deletes the section's file name so no new process can attach. Processes that have
// it mapped keep using it until they close it; the memory is freed after the last one.
func (t *Table) Remove() error {
	if err := os.Remove(t.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sessioncache: remove table %s: %w", t.path, err)
	}
	return nil
}

func (t *Table) unmap() error {
	err := t.mem.Unmap()
	if cerr := t.file.Close(); err == nil && !errors.Is(cerr, syscall.EBADF) {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sessioncache: close table %s: %w", t.path, err)
	}
	return nil
}

// record returns the header of shard-local record i.
func (t *Table) record(sh *shard, i uint32) *recordHeader {
	return (*recordHeader)(unsafe.Add(sh.records, uintptr(i)*t.stride))
}

// recordData returns the key and value bytes area of r.
func (t *Table) recordData(r *recordHeader) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(r), recordHeaderSize)
}

// slot returns the address of shard-local index slot i.
func slot(sh *shard, i uint32) *uint64 {
	return (*uint64)(unsafe.Add(sh.slots, uintptr(i)*slotSize))
}
