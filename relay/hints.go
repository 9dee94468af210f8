package relay

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/globalsession/globalsession/internal/wire"
)

// hintStore keeps, for each relief server the sibling knows, what that server should have
// received while it could not be reached (hinted handoff): evictions and deletions, in a
// file of its own, in the record format of the relay's outbox. The sibling hands a
// server's hints over when it is back, and only then removes them. A store also keeps the
// list of the relief servers ever seen, so ownership survives the sibling's restarts.
type hintStore struct {
	dir   string
	limit int64 // bytes per server
	log   *slog.Logger

	mu    sync.Mutex
	files map[string]*hintFile

	added, delivered, refused atomic.Int64
}

type hintFile struct {
	mu   sync.Mutex
	name string // the server's relief name
	base string // the file path without suffix
	f    *os.File
	size int64 // bytes in the file and in the one being delivered
}

var errHintsFull = errors.New("relay: hints for this relief server are at their limit")

func openHints(dir string, limit int64, log *slog.Logger) (*hintStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: hints %s: %w", dir, err)
	}
	return &hintStore{dir: dir, limit: limit, log: log, files: map[string]*hintFile{}}, nil
}

func (h *hintStore) file(name string) *hintFile {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf := h.files[name]
	if hf == nil {
		hf = &hintFile{name: name, base: filepath.Join(h.dir, hex.EncodeToString([]byte(name)))}
		for _, suffix := range []string{".hints", ".delivering"} {
			if st, err := os.Stat(hf.base + suffix); err == nil {
				hf.size += st.Size()
			}
		}
		h.files[name] = hf
	}
	return hf
}

// recordSize is the size of f as a record (see appendRecord).
func recordSize(f *wire.Frame) int { return 8 + 4 + f.Len() }

// appendRecord appends f as the outbox and the hints store it: length, CRC-32C, frame. The
// frame goes in first, then its checksum, and the length last, so a record written in
// place where a length of zero ends the records (the outbox's shared memory) ends them
// until it is whole.
func appendRecord(dst []byte, f *wire.Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst, err := wire.Append(dst, f)
	if err != nil {
		return dst[:start], err
	}
	payload := dst[start+8:]
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, outboxCRC))
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	return dst, nil
}

// add appends f to name's hints; it is in the file when add returns nil.
func (h *hintStore) add(name string, f *wire.Frame) error {
	g := *f
	g.ID, g.Flags = 0, g.Flags&^wire.FlagNoReply
	rec, err := appendRecord(make([]byte, 0, recordSize(&g)), &g)
	if err != nil {
		return err
	}
	hf := h.file(name)
	hf.mu.Lock()
	defer hf.mu.Unlock()
	if hf.size+int64(len(rec)) > h.limit {
		h.refused.Add(1)
		return fmt.Errorf("%w (%s, %d bytes)", errHintsFull, name, hf.size)
	}
	if hf.f == nil {
		if hf.f, err = os.OpenFile(hf.base+".hints", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("relay: hints for %s: %w", name, err)
		}
	}
	if _, err := hf.f.Write(rec); err != nil {
		return fmt.Errorf("relay: hints for %s: %w", name, err)
	}
	hf.size += int64(len(rec))
	h.added.Add(1)
	return nil
}

// has reports whether name has hints waiting.
func (h *hintStore) has(name string) bool {
	hf := h.file(name)
	hf.mu.Lock()
	defer hf.mu.Unlock()
	return hf.size > 0
}

// take returns the frames of name's hints to deliver and the file that holds them: a file
// left by a delivery that did not finish, or else the current hints, which are moved
// aside so that new hints start a new file. It returns no path when there is nothing.
func (h *hintStore) take(name string) ([]*wire.Frame, string, error) {
	hf := h.file(name)
	hf.mu.Lock()
	defer hf.mu.Unlock()
	path := hf.base + ".delivering"
	if _, err := os.Stat(path); err != nil {
		if hf.f != nil {
			hf.f.Close()
			hf.f = nil
		}
		if err := os.Rename(hf.base+".hints", path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, "", nil
			}
			return nil, "", err
		}
	}
	recs, err := readSegment(path)
	if err != nil {
		h.log.Warn("relay: a hints file ends early; delivering what precedes the damage", "file", path, "err", err)
	}
	frames := make([]*wire.Frame, len(recs))
	for i, r := range recs {
		frames[i] = r.frame
	}
	return frames, path, nil
}

// done removes a delivered hints file.
func (h *hintStore) done(name, path string, n int) {
	hf := h.file(name)
	hf.mu.Lock()
	defer hf.mu.Unlock()
	if st, err := os.Stat(path); err == nil {
		hf.size -= st.Size()
	}
	os.Remove(path)
	h.delivered.Add(int64(n))
}

// drop removes name's hints, delivered or not.
func (h *hintStore) drop(name string) error {
	hf := h.file(name)
	hf.mu.Lock()
	defer hf.mu.Unlock()
	if hf.f != nil {
		hf.f.Close()
		hf.f = nil
	}
	hf.size = 0
	var errs []error
	for _, suffix := range []string{".hints", ".delivering"} {
		if err := os.Remove(hf.base + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// members returns the relief names recorded as known.
func (h *hintStore) members() []string {
	b, err := os.ReadFile(filepath.Join(h.dir, "members"))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if _, _, ok := ParseReliefName(line); ok {
			out = append(out, line)
		}
	}
	return out
}

// remember records a relief name as known, for the sibling's next runs.
func (h *hintStore) remember(names []string) error {
	tmp := filepath.Join(h.dir, "members.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(h.dir, "members"))
}

// close closes the open files.
func (h *hintStore) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hf := range h.files {
		hf.mu.Lock()
		if hf.f != nil {
			hf.f.Close()
			hf.f = nil
		}
		hf.mu.Unlock()
	}
}
