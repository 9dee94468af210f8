package relief

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// SyncPolicy says when a LogStore forces its writes to stable storage.
type SyncPolicy int

const (
	// SyncInterval fsyncs on the first write after LogConfig.SyncEvery has passed since
	// the last fsync, and on Close (the default). Every acknowledged entry is written to
	// the file before the acknowledgement, so it survives the process being killed; a power
	// loss can take the entries written since the last fsync.
	SyncInterval SyncPolicy = iota
	// SyncAlways fsyncs before every acknowledgement: nothing acknowledged is lost even to
	// a power loss, at the cost of a disk flush per write.
	SyncAlways
	// SyncNever leaves flushing to the operating system.
	SyncNever
)

// LogConfig configures a LogStore.
type LogConfig struct {
	// Path is the log file. It is created if missing.
	Path string
	// Sync is the fsync policy. The zero value is SyncInterval.
	Sync SyncPolicy
	// SyncEvery is the interval of SyncInterval. Zero means one second.
	SyncEvery time.Duration
	// CompactAt is the file size, in bytes, above which the log is rewritten when more than
	// half of it is dead (overwritten, deleted or expired entries). Zero means 4 MiB.
	CompactAt int64
	// Logger receives recovery of a torn tail and compactions. Nil means no logging.
	Logger *slog.Logger
}

// LogStore is a durable Store for aging relief servers: an append-only log of entries and
// tombstones, replayed into memory when it opens, so a restarted server still has every
// entry and every deletion it acknowledged that has not expired: a deleted key does not
// come back from the log. The log is compacted when most of it is dead.
//
// The file starts with the 8 bytes "GSLOG2\n\x00", then records (little-endian): u32 length
// of the rest, u32 CRC-32C of the rest, u8 op (1 entry, 2 tombstone), i64 expiry in unix
// nanoseconds, u64 revision, u16 key length, key, value. A record that is torn (a crash in
// the middle of a write) fails its length or CRC and is cut off, with everything after it.
type LogStore struct {
	cfg  LogConfig
	mu   sync.Mutex
	f    *os.File
	size int64 // bytes in the file
	live int64 // bytes of the records of the live entries
	m    map[string]logEntry
	buf  []byte
	// sync state
	dirty    bool
	lastSync time.Time
	closed   bool
}

type logEntry struct {
	value   []byte
	expiry  int64
	rev     uint64
	deleted bool
	size    int64 // bytes of its record
}

func (e logEntry) entry() sessioncache.Entry {
	out := sessioncache.Entry{Rev: e.rev, Deleted: e.deleted}
	if e.expiry != 0 {
		out.Expiry = time.Unix(0, e.expiry)
	}
	if !e.deleted {
		out.Value = append([]byte(nil), e.value...)
	}
	return out
}

const (
	logOpSet    = 1
	logOpDelete = 2
	logHeader   = 4 + 4 + 1 + 8 + 8 + 2
	maxRecord   = 64 << 20
	logMagic    = "GSLOG2\n\x00"
)

// ErrOldLog means a log file was written by an older version of LogStore, whose records
// carry no revisions.
var ErrOldLog = errors.New("relief: log file is of an older format without revisions")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var _ Store = (*LogStore)(nil)

// OpenLog opens (or creates) the log at cfg.Path and replays it.
func OpenLog(cfg LogConfig) (*LogStore, error) {
	if cfg.Path == "" {
		return nil, errors.New("relief: log store: path is empty")
	}
	if cfg.SyncEvery == 0 {
		cfg.SyncEvery = time.Second
	}
	if cfg.CompactAt == 0 {
		cfg.CompactAt = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relief: open log %s: %w", cfg.Path, err)
	}
	s := &LogStore{cfg: cfg, f: f, m: map[string]logEntry{}, lastSync: time.Now()}
	if err := s.replay(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// replay checks the file's magic (writing it to a new file), reads every record, keeps
// the live entries and tombstones, and cuts off a torn tail.
func (s *LogStore) replay() error {
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if _, err := s.f.Write([]byte(logMagic)); err != nil {
			return fmt.Errorf("relief: log %s: %w", s.cfg.Path, err)
		}
		s.size = int64(len(logMagic))
		return nil
	}
	magic := make([]byte, len(logMagic))
	if _, err := io.ReadFull(s.f, magic); err != nil || string(magic) != logMagic {
		return fmt.Errorf("%w: %s (move it away to start an empty log)", ErrOldLog, s.cfg.Path)
	}
	r := bufio.NewReaderSize(s.f, 1<<16)
	now := time.Now().UnixNano()
	off := int64(len(logMagic))
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return s.cut(off, "a torn record length")
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n < logHeader-8 || n > maxRecord {
			return s.cut(off, fmt.Sprintf("a record length of %d", n))
		}
		rest := make([]byte, n)
		if _, err := io.ReadFull(r, rest); err != nil {
			return s.cut(off, "a torn record")
		}
		if crc32.Checksum(rest, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return s.cut(off, "a record that fails its checksum")
		}
		op, exp, rev := rest[0], int64(binary.LittleEndian.Uint64(rest[1:9])), binary.LittleEndian.Uint64(rest[9:17])
		kl := int(binary.LittleEndian.Uint16(rest[17:19]))
		if 19+kl > len(rest) {
			return s.cut(off, "a key longer than its record")
		}
		key, value := string(rest[19:19+kl]), rest[19+kl:]
		size := 8 + n
		if old, ok := s.m[key]; ok {
			s.live -= old.size
			delete(s.m, key)
		}
		if exp == 0 || exp > now {
			s.m[key] = logEntry{value: value, expiry: exp, rev: rev, deleted: op == logOpDelete, size: size}
			s.live += size
		}
		off += size
	}
	s.size = off
	_, err = s.f.Seek(off, io.SeekStart)
	return err
}

// cut truncates a torn tail at off and finishes the replay there.
func (s *LogStore) cut(off int64, why string) error {
	s.cfg.Logger.Warn("relief: log has a torn tail; cutting it off", "path", s.cfg.Path, "at", off, "found", why)
	if err := s.f.Truncate(off); err != nil {
		return fmt.Errorf("relief: log %s: cut torn tail at %d: %w", s.cfg.Path, off, err)
	}
	s.size = off
	_, err := s.f.Seek(off, io.SeekStart)
	return err
}

// Get implements Store.
func (s *LogStore) Get(key []byte) (sessioncache.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sessioncache.Entry{}, errors.New("relief: log store closed")
	}
	e, ok := s.m[string(key)]
	if !ok || (e.expiry != 0 && e.expiry <= time.Now().UnixNano()) {
		return sessioncache.Entry{}, ErrNotFound
	}
	if e.deleted {
		return e.entry(), ErrNotFound
	}
	return e.entry(), nil
}

// Put implements Store. What it stores is in the file (and synced as the policy says)
// before Put returns.
func (s *LogStore) Put(key []byte, e sessioncache.Entry) (bool, error) {
	var exp int64
	if !e.Expiry.IsZero() {
		exp = e.Expiry.UnixNano()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.m[string(key)]
	now := time.Now().UnixNano()
	if had && old.expiry != 0 && old.expiry <= now {
		had = false
	}
	if had && !e.Newer(old.entry()) {
		return false, nil
	}
	if e.Deleted && had && !old.deleted && exp != 0 && (old.expiry == 0 || old.expiry > exp) {
		exp = old.expiry // the tombstone outlives the entry it replaces
	}
	if exp != 0 && exp <= now && !had {
		return false, nil // expired, and replaces nothing
	}
	op, value := byte(logOpSet), e.Value
	if e.Deleted {
		op, value = logOpDelete, nil
	}
	size, err := s.append(op, key, value, exp, e.Rev)
	if err != nil {
		return false, err
	}
	if old, ok := s.m[string(key)]; ok {
		s.live -= old.size
	}
	s.m[string(key)] = logEntry{value: append([]byte(nil), value...), expiry: exp, rev: e.Rev, deleted: e.Deleted, size: size}
	s.live += size
	return true, s.afterWrite()
}

// append writes one record with a single write call and returns its size.
func (s *LogStore) append(op byte, key, value []byte, exp int64, rev uint64) (int64, error) {
	if s.closed {
		return 0, errors.New("relief: log store closed")
	}
	if len(key) > 0xffff || len(key)+len(value)+logHeader > maxRecord {
		return 0, fmt.Errorf("relief: log store: key %d + value %d bytes is too large", len(key), len(value))
	}
	b := s.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(1+8+8+2+len(key)+len(value)))
	b = append(b, 0, 0, 0, 0, op)
	b = binary.LittleEndian.AppendUint64(b, uint64(exp))
	b = binary.LittleEndian.AppendUint64(b, rev)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = append(b, value...)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], crcTable))
	s.buf = b
	if _, err := s.f.Write(b); err != nil {
		return 0, fmt.Errorf("relief: log %s: write: %w", s.cfg.Path, err)
	}
	s.size += int64(len(b))
	s.dirty = true
	return int64(len(b)), nil
}

// afterWrite syncs as the policy says and compacts when the log is mostly dead.
func (s *LogStore) afterWrite() error {
	switch s.cfg.Sync {
	case SyncAlways:
		if err := s.sync(); err != nil {
			return err
		}
	case SyncInterval:
		if time.Since(s.lastSync) >= s.cfg.SyncEvery {
			if err := s.sync(); err != nil {
				return err
			}
		}
	}
	if s.size > s.cfg.CompactAt && s.size > 2*s.live {
		return s.compact()
	}
	return nil
}

func (s *LogStore) sync() error {
	if !s.dirty {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("relief: log %s: fsync: %w", s.cfg.Path, err)
	}
	s.dirty, s.lastSync = false, time.Now()
	return nil
}

// compact rewrites the live, unexpired entries into a new file and renames it over the log.
func (s *LogStore) compact() error {
	tmp := s.cfg.Path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relief: compact log %s: %w", s.cfg.Path, err)
	}
	old, oldSize := s.f, s.size
	if _, err := f.Write([]byte(logMagic)); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("relief: compact log %s: %w", s.cfg.Path, err)
	}
	s.f, s.size, s.live = f, int64(len(logMagic)), 0
	now := time.Now().UnixNano()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		s.f, s.size = old, oldSize
		return fmt.Errorf("relief: compact log %s: %w", s.cfg.Path, err)
	}
	for k, e := range s.m {
		if e.expiry != 0 && e.expiry <= now {
			delete(s.m, k)
			continue
		}
		op := byte(logOpSet)
		if e.deleted {
			op = logOpDelete
		}
		size, err := s.append(op, []byte(k), e.value, e.expiry, e.rev)
		if err != nil {
			return fail(err)
		}
		e.size = size
		s.m[k] = e
		s.live += size
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.cfg.Path); err != nil {
		return fail(err)
	}
	old.Close()
	s.dirty, s.lastSync = false, time.Now()
	s.cfg.Logger.Info("relief: compacted log", "path", s.cfg.Path, "from", oldSize, "to", s.size, "entries", len(s.m))
	return nil
}

// Len implements Store.
func (s *LogStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Size returns the log file's size in bytes.
func (s *LogStore) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Close syncs and closes the log.
func (s *LogStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
