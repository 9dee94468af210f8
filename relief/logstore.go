package relief

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	// KeepExpiredFor is how long after its expiry a version is still kept, without its
	// value, as the deletion of its revision (through restarts and compactions), so that an
	// older version of the key, handed over late or held by another server, is not served
	// after it: a session set again with a shorter lifetime stays ended. Zero means one hour;
	// negative, not kept.
	KeepExpiredFor time.Duration
	// Logger receives recovery of a torn tail and compactions. Nil means no logging.
	Logger *slog.Logger
}

// LogStore is a durable Store for aging relief servers: an append-only log of entries and
// tombstones, replayed into memory when it opens, so a restarted server still has every
// entry and every deletion it acknowledged that has not expired: a deleted key does not
// come back from the log. A version that expired reads as the deletion of its revision
// for LogConfig.KeepExpiredFor more. The log is compacted when most of it is dead.
//
// The file starts with the 8 bytes "GSLOG2\n\x00", then records (little-endian): u32 length
// of the rest, u32 CRC-32C of the rest, u8 op (1 entry, 2 tombstone), i64 expiry in unix
// nanoseconds, u64 revision, u16 key length, key, value. A record that is torn (a crash in
// the middle of a write) fails its length or CRC and is cut off, with everything after it.
type LogStore struct {
	cfg  LogConfig
	mu   sync.Mutex
	f    logFile
	size int64 // bytes of whole records in the file: where the next one is written
	live int64 // bytes of the records of the live entries
	m    map[string]logEntry
	buf  []byte
	gen  uint64 // counts writes, so a compaction knows which entries changed meanwhile
	// broken is set when a failed write could not be undone: the file may hold torn bytes
	// at size, so nothing more is acknowledged until the log is opened again.
	broken error
	// sync state
	dirty    bool
	lastSync time.Time
	closed   bool
	// compaction, which runs in a goroutine of its own
	compacting  bool
	compactions sync.WaitGroup
}

type logEntry struct {
	value   []byte
	expiry  int64
	rev     uint64
	deleted bool
	size    int64  // bytes of its record
	gen     uint64 // the write that stored it
}

// logFile is what a LogStore needs of its file. Tests wrap the file to inject faults.
type logFile interface {
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// wrapLogFile lets tests put a fault-injecting wrapper around a log's file (the log's, and
// a compaction's new one).
var wrapLogFile = func(f *os.File) logFile { return f }

// testHookCompaction, when set, runs at the named steps of a compaction: "written" (the new
// file holds the snapshot, not yet the changes made meanwhile) and "renamed".
var testHookCompaction func(step string)

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
	if cfg.KeepExpiredFor == 0 {
		cfg.KeepExpiredFor = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relief: open log %s: %w", cfg.Path, err)
	}
	s := &LogStore{cfg: cfg, m: map[string]logEntry{}, lastSync: time.Now()}
	if err := s.replay(f); err != nil {
		f.Close()
		return nil, err
	}
	s.f = wrapLogFile(f)
	return s, nil
}

// replay checks the file's magic (writing it to a new file), reads every record, keeps
// the live entries and tombstones, and cuts off a torn tail. Records are written whole at
// the end of the last whole one (a failed write is cut off before the next), so nothing
// acknowledged follows a torn record.
func (s *LogStore) replay(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if _, err := f.Write([]byte(logMagic)); err != nil {
			return fmt.Errorf("relief: log %s: %w", s.cfg.Path, err)
		}
		s.size = int64(len(logMagic))
		return nil
	}
	magic := make([]byte, len(logMagic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != logMagic {
		return fmt.Errorf("%w: %s (move it away to start an empty log)", ErrOldLog, s.cfg.Path)
	}
	r := bufio.NewReaderSize(f, 1<<16)
	now := time.Now().UnixNano()
	off := int64(len(logMagic))
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return s.cut(f, off, "a torn record length")
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n < logHeader-8 || n > maxRecord {
			return s.cut(f, off, fmt.Sprintf("a record length of %d", n))
		}
		rest := make([]byte, n)
		if _, err := io.ReadFull(r, rest); err != nil {
			return s.cut(f, off, "a torn record")
		}
		if crc32.Checksum(rest, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return s.cut(f, off, "a record that fails its checksum")
		}
		op, exp, rev := rest[0], int64(binary.LittleEndian.Uint64(rest[1:9])), binary.LittleEndian.Uint64(rest[9:17])
		kl := int(binary.LittleEndian.Uint16(rest[17:19]))
		if 19+kl > len(rest) {
			return s.cut(f, off, "a key longer than its record")
		}
		key, value := string(rest[19:19+kl]), rest[19+kl:]
		size := 8 + n
		if old, ok := s.m[key]; ok {
			s.live -= old.size
			delete(s.m, key)
		}
		switch {
		case exp == 0 || exp > now:
			s.m[key] = logEntry{value: value, expiry: exp, rev: rev, deleted: op == logOpDelete, size: size}
			s.live += size
		case s.keptExpired(exp, now):
			s.m[key] = logEntry{expiry: exp, rev: rev, deleted: true} // the deletion of its revision
		}
		off += size
	}
	s.size = off
	return nil
}

// cut truncates a torn tail at off and finishes the replay there.
func (s *LogStore) cut(f *os.File, off int64, why string) error {
	s.cfg.Logger.Warn("relief: log has a torn tail; cutting it off", "path", s.cfg.Path, "at", off, "found", why)
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("relief: log %s: cut torn tail at %d: %w", s.cfg.Path, off, err)
	}
	s.size = off
	return nil
}

// keptExpired reports whether a version that expired at exp is still kept, at now, as the
// deletion of its revision.
func (s *LogStore) keptExpired(exp, now int64) bool {
	return exp > now-int64(s.cfg.KeepExpiredFor)
}

// Get implements Store. A version that expired reads as a tombstone of its revision.
func (s *LogStore) Get(_ context.Context, key []byte) (sessioncache.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sessioncache.Entry{}, errors.New("relief: log store closed")
	}
	e, ok := s.m[string(key)]
	if !ok {
		return sessioncache.Entry{}, ErrNotFound
	}
	if e.expiry != 0 && e.expiry <= time.Now().UnixNano() {
		if !s.keptExpired(e.expiry, time.Now().UnixNano()) {
			return sessioncache.Entry{}, ErrNotFound
		}
		e.deleted = true
	}
	if e.deleted {
		return e.entry(), ErrNotFound
	}
	return e.entry(), nil
}

// Put implements Store. What it stores is in the file (and synced as the policy says)
// before Put returns.
func (s *LogStore) Put(_ context.Context, key []byte, e sessioncache.Entry) (bool, error) {
	var exp int64
	if !e.Expiry.IsZero() {
		exp = e.Expiry.UnixNano()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, inMap := s.m[string(key)]
	had := inMap
	now := time.Now().UnixNano()
	live := had // an unexpired version or tombstone
	if had && old.expiry != 0 && old.expiry <= now {
		// Expired: the deletion of its revision, while it is kept.
		live, old.deleted = false, true
		had = s.keptExpired(old.expiry, now)
	}
	if had && !e.Newer(old.entry()) {
		return false, nil
	}
	if e.Deleted && live && !old.deleted && exp != 0 && (old.expiry == 0 || old.expiry > exp) {
		exp = old.expiry // the tombstone outlives the entry it replaces
	}
	if exp != 0 && exp <= now && !live {
		// Expired, and replaces nothing live: it only moves the key's deletion on to its
		// revision, in memory (a replay keeps expired versions so too, see keptExpired).
		if had || s.keptExpired(exp, now) {
			if inMap {
				s.live -= old.size
			}
			s.gen++
			s.m[string(key)] = logEntry{expiry: max(exp, old.expiry), rev: e.Rev, deleted: true, gen: s.gen}
		}
		return false, nil
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
	s.gen++
	s.m[string(key)] = logEntry{value: append([]byte(nil), value...), expiry: exp, rev: e.Rev, deleted: e.Deleted, size: size, gen: s.gen}
	s.live += size
	return true, s.afterWrite()
}

// append writes one record at the end of the log and returns its size.
func (s *LogStore) append(op byte, key, value []byte, exp int64, rev uint64) (int64, error) {
	if s.closed {
		return 0, errors.New("relief: log store closed")
	}
	if s.broken != nil {
		return 0, s.broken
	}
	b, err := s.record(op, key, value, exp, rev)
	if err != nil {
		return 0, err
	}
	if _, err := s.f.WriteAt(b, s.size); err != nil {
		// Cut what was written of the record, so the next one follows the last whole one;
		// if that fails, acknowledge nothing more (a later record after torn bytes would
		// be lost on replay).
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = fmt.Errorf("relief: log %s: a write failed (%v) and could not be undone (%v): reopen the log", s.cfg.Path, err, terr)
			s.cfg.Logger.Error("relief: log store refuses writes until it is opened again", "err", s.broken)
		}
		return 0, fmt.Errorf("relief: log %s: write: %w", s.cfg.Path, err)
	}
	s.size += int64(len(b))
	s.dirty = true
	return int64(len(b)), nil
}

// record encodes one record into s.buf and returns it.
func (s *LogStore) record(op byte, key, value []byte, exp int64, rev uint64) ([]byte, error) {
	if len(key) > 0xffff || len(key)+len(value)+logHeader > maxRecord {
		return nil, fmt.Errorf("relief: log store: key %d + value %d bytes is too large", len(key), len(value))
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
	return b, nil
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
	if s.size > s.cfg.CompactAt && s.size > 2*s.live && !s.compacting {
		s.compacting = true
		s.compactions.Add(1)
		go s.compact()
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

// compact rewrites the live, unexpired entries into a new file and renames it over the
// log. It writes a snapshot of the entries without holding the store's lock (lookups and
// writes go on, into the old file), then, with the lock, adds what changed meanwhile,
// syncs, renames and syncs the directory. On failure the store stays on the old file as
// it was.
func (s *LogStore) compact() {
	defer s.compactions.Done()
	err := s.rewrite()
	s.mu.Lock()
	s.compacting = false
	s.mu.Unlock()
	if err != nil {
		s.cfg.Logger.Warn("relief: compacting the log failed; it stays as it is", "path", s.cfg.Path, "err", err)
	}
}

func (s *LogStore) rewrite() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	snap := make(map[string]logEntry, len(s.m))
	for k, e := range s.m {
		snap[k] = e
	}
	gen, oldSize := s.gen, s.size
	s.mu.Unlock()

	tmp := s.cfg.Path + ".compact"
	of, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	nf := wrapLogFile(of)
	done := false
	defer func() {
		if !done {
			nf.Close()
			os.Remove(tmp)
		}
	}()
	w := &LogStore{cfg: s.cfg, f: nf, size: int64(len(logMagic))} // writes the new file
	if _, err := nf.WriteAt([]byte(logMagic), 0); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	sizes := make(map[string]int64, len(snap))
	for k, e := range snap {
		if e.expiry != 0 && e.expiry <= now {
			if !s.keptExpired(e.expiry, now) {
				continue
			}
			e.deleted, e.value = true, nil // kept as the deletion of its revision
		}
		size, err := w.append(opOf(e), []byte(k), e.value, e.expiry, e.rev)
		if err != nil {
			return err
		}
		sizes[k] = size
	}
	if testHookCompaction != nil {
		testHookCompaction("written")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	for k, e := range s.m { // what changed since the snapshot
		if e.gen > gen {
			if e.expiry != 0 && e.expiry <= now {
				e.deleted, e.value = true, nil
			}
			size, err := w.append(opOf(e), []byte(k), e.value, e.expiry, e.rev)
			if err != nil {
				return err
			}
			sizes[k] = size
		}
	}
	if err := nf.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.cfg.Path); err != nil {
		return err
	}
	done = true // the new file is the log now, whatever happens next
	if testHookCompaction != nil {
		testHookCompaction("renamed")
	}
	dirErr := syncDir(filepath.Dir(s.cfg.Path))
	old := s.f
	s.f, s.size, s.live = nf, w.size, 0
	for k, e := range s.m {
		size, ok := sizes[k]
		if !ok {
			delete(s.m, k) // expired, and no longer kept
			continue
		}
		e.size = size
		s.m[k] = e
		s.live += size
	}
	s.dirty, s.lastSync = false, time.Now()
	old.Close()
	s.cfg.Logger.Info("relief: compacted log", "path", s.cfg.Path, "from", oldSize, "to", s.size, "entries", len(s.m))
	if dirErr != nil {
		return fmt.Errorf("the log was compacted, but its directory could not be synced: %w", dirErr)
	}
	return nil
}

// opOf is the record op of an entry.
func opOf(e logEntry) byte {
	if e.deleted {
		return logOpDelete
	}
	return logOpSet
}

// syncDir fsyncs a directory, so that a rename in it survives a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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

// Close stops writes, waits for a compaction in progress to finish or give up, then syncs
// and closes the log.
func (s *LogStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.compactions.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
