package sessioncache

import (
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"path/filepath"
	"time"
)

// Defaults used when a Config field is zero.
const (
	// DefaultDir is where sections live when Config.Path is empty: a shared-memory file system.
	DefaultDir = "/dev/shm"
	// DefaultElementCount is the number of records a new section holds (the config files' el_count).
	DefaultElementCount = 20000
	// DefaultRecordSize is the bytes of key plus value one record holds (record_size in the
	// config files).
	DefaultRecordSize = 384
	// DefaultMaxKeySize is the longest key accepted, in bytes.
	DefaultMaxKeySize = 256
	// DefaultFileMode is the permission of a new section file.
	DefaultFileMode fs.FileMode = 0o600
)

// Hard limits on a section's shape. Config values beyond them are rejected.
const (
	// MaxRecordSize is the largest record_size a section may have (16 MiB).
	MaxRecordSize = 16 << 20
	// MaxKeyLimit is the largest MaxKeySize a section may have (the key length is stored in 16 bits).
	MaxKeyLimit = 65535
	// MaxElementCount is the largest el_count a section may have.
	MaxElementCount = 1 << 30
	// MaxSectionSize is the largest section, header included (1 TiB).
	MaxSectionSize = 1 << 40
	// MaxShards is the largest shard count.
	MaxShards = 1 << 16
)

// Config says where a table lives, what shape it has, and whether this process creates it.
// The zero value creates nothing: it attaches to the default section for seed 0.
// Field names follow the configuration files' (el_count, record_size, seed, manage_section).
type Config struct {
	// Path is the section file. Empty means DefaultDir/globalsession-<seed in hex>.table.
	// Put it on a shared-memory file system (tmpfs) so the table never touches a disk. The
	// table asks for huge pages, which a tmpfs mounted with huge=advise (or within_size,
	// always) gives: large tables are faster on them (see Table.HugePageBytes).
	Path string

	// Create says this process lays out the section (the config files' manage_section or
	// am_initializer). One process per host creates; the others attach. A creator that finds
	// a section of the same shape reuses it, so sessions survive its restart.
	Create bool

	// Replace lets a creator replace a section of another shape (or a damaged file) instead
	// of failing with a *LayoutError. Processes still attached to the old one keep it.
	Replace bool

	// ElementCount is the number of records (the config files' el_count). When creating, zero means
	// DefaultElementCount. When attaching, zero accepts what the section has; otherwise it
	// must match.
	ElementCount int

	// RecordSize is the bytes of key plus value one record holds (the config files' record_size).
	// When creating, zero means DefaultRecordSize; when attaching, zero accepts the section's.
	RecordSize int

	// MaxKeySize is the longest key in bytes. When creating, zero means DefaultMaxKeySize
	// (or RecordSize if smaller); when attaching, zero accepts the section's.
	MaxKeySize int

	// Seed seeds the xxhash of keys (the seed field of a config file). When attaching, zero
	// accepts the section's; otherwise it must match. A creator uses it as given.
	Seed uint64

	// Shards is the number of independently written parts of the table, rounded up to a
	// power of two. Each shard holds a fixed share of the records, so a shard can be full
	// (and evict) before the table is: size ElementCount about 1.25 times the entries you
	// expect to keep. When creating, zero means one shard per 1024 records, at least 1 and
	// at most 256. When attaching, zero accepts the section's.
	Shards int

	// FileMode is the permission of a new section file. Zero means DefaultFileMode.
	FileMode fs.FileMode

	// OnEvict, when set, receives every entry the table pushes out to make room while it has
	// not expired, so the caller can keep it elsewhere (the relay hands them to aging relief).
	// It runs in the goroutine whose Set caused the eviction, after the table's locks are
	// released. key and value are valid only during the call.
	OnEvict func(key, value []byte, expiry time.Time)

	// BeforeEvict, when set, receives every unexpired entry the table is about to push out,
	// before the entry leaves the table: it runs with the shard's lock held, so it must
	// return quickly and must not use the table. A process killed while it runs leaves the
	// entry in the table (the next writer repairs the shard), so a caller that records the
	// entry durably here loses nothing to a crash between the eviction and the record
	// (the relay hands evictions to aging relief this way). key and value are valid only
	// during the call.
	BeforeEvict func(key, value []byte, expiry time.Time)

	// BeforeReclaim, when set, receives every entry whose expiry has passed when the table
	// takes its record back to reuse the space (not one replaced by a Set of its key or
	// removed by Delete), before the record is freed, with the shard's lock held as for
	// BeforeEvict. Until then the entry is still seen by GetAppendIncludingExpired and
	// SetIf; a caller that orders versions can hand it on here as a deletion of its
	// version (the relay does, so the tiers below do not serve older versions of the key).
	// key and value are valid only during the call.
	BeforeReclaim func(key, value []byte, expiry time.Time)

	// Prefault makes Open bring every page of the section into memory and into this
	// process's page tables before it returns, so that no Get or Set stops for the first
	// touch of a page (a page fault of a few microseconds on tmpfs, paid once per page and
	// process otherwise, spread over the first minutes of traffic). Open takes longer by
	// about the time to write the section once; see docs/performance.md for figures. It
	// changes nothing in the section, so processes may attach with it while others write.
	// With a Logger, Open then logs how much of the section is on huge pages (see
	// Table.HugePageBytes).
	Prefault bool

	// Logger receives recoveries of locks left by dead processes and section replacement.
	// Nil means no logging.
	Logger *slog.Logger
}

// shape is the part of a config that is stored in the section header.
type shape struct {
	elCount    uint32
	recordSize uint32
	maxKey     uint32
	seed       uint64
	shards     uint32
}

// resolvedPath returns the section path for this config.
func (c *Config) resolvedPath() string {
	if c.Path != "" {
		return c.Path
	}
	return filepath.Join(DefaultDir, fmt.Sprintf("globalsession-%016x.table", c.Seed))
}

// createShape applies the creation defaults and checks every limit.
func (c *Config) createShape() (shape, error) {
	s := shape{seed: c.Seed}
	el := c.ElementCount
	if el == 0 {
		el = DefaultElementCount
	}
	if el < 0 || el > MaxElementCount {
		return s, configError("el_count", "%d is outside 1..%d", el, MaxElementCount)
	}
	rs := c.RecordSize
	if rs == 0 {
		rs = DefaultRecordSize
	}
	if rs < 0 || rs > MaxRecordSize {
		return s, configError("record_size", "%d is outside 1..%d", rs, MaxRecordSize)
	}
	mk := c.MaxKeySize
	if mk == 0 {
		mk = min(DefaultMaxKeySize, rs)
	}
	if mk < 0 || mk > MaxKeyLimit || mk > rs {
		return s, configError("max_key_size", "%d is outside 1..min(%d, record_size %d)", mk, MaxKeyLimit, rs)
	}
	sh := c.Shards
	if sh == 0 {
		sh = min(max(el/1024, 1), 256)
	}
	if sh < 0 || sh > MaxShards {
		return s, configError("shards", "%d is outside 1..%d", sh, MaxShards)
	}
	sh = 1 << bits.Len(uint(sh-1))
	if sh > el {
		// Every shard needs at least one record.
		sh = 1 << (bits.Len(uint(el)) - 1)
	}
	if perShard := (el + sh - 1) / sh; perShard > maxShardRecords {
		if c.Shards != 0 {
			return s, configError("shards", "%d shards of %d records exceed the %d records one shard can index",
				sh, perShard, maxShardRecords)
		}
		for (el+sh-1)/sh > maxShardRecords {
			sh *= 2
		}
	}
	s.elCount, s.recordSize, s.maxKey, s.shards = uint32(el), uint32(rs), uint32(mk), uint32(sh)
	if size := layoutFor(s).total; size > MaxSectionSize {
		return s, configError("el_count", "%d records of %d bytes need %d bytes, more than %d",
			el, rs, size, uint64(MaxSectionSize))
	}
	return s, nil
}

// checkAttach compares the non-zero fields of the config with a section's shape.
func (c *Config) checkAttach(path string, s shape) error {
	checks := []struct {
		field   string
		want    uint64
		section uint64
	}{
		{"el_count", uint64(c.ElementCount), uint64(s.elCount)},
		{"record_size", uint64(c.RecordSize), uint64(s.recordSize)},
		{"max_key_size", uint64(c.MaxKeySize), uint64(s.maxKey)},
		{"seed", c.Seed, s.seed},
		{"shards", uint64(c.Shards), uint64(s.shards)},
	}
	for _, ch := range checks {
		if ch.want != 0 && ch.want != ch.section {
			return &LayoutError{Path: path, Field: ch.field, Section: ch.section, Config: ch.want}
		}
	}
	return nil
}

// sameShape compares every field of a creator's shape with a section's.
func sameShape(path string, section, want shape) error {
	checks := []struct {
		field         string
		section, conf uint64
	}{
		{"el_count", uint64(section.elCount), uint64(want.elCount)},
		{"record_size", uint64(section.recordSize), uint64(want.recordSize)},
		{"max_key_size", uint64(section.maxKey), uint64(want.maxKey)},
		{"seed", section.seed, want.seed},
		{"shards", uint64(section.shards), uint64(want.shards)},
	}
	for _, ch := range checks {
		if ch.section != ch.conf {
			return &LayoutError{Path: path, Field: ch.field, Section: ch.section, Config: ch.conf}
		}
	}
	return nil
}
