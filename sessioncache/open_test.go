package sessioncache

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAttachSharesEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.table")
	creator := openTest(t, Config{Path: path, ElementCount: 128, RecordSize: 100, Seed: 9849381})
	require.NoError(t, creator.Set([]byte("sess"), []byte("alice"), time.Time{}))

	// An attacher that names only the seed (as the seed's client config does) takes the rest
	// of the shape from the section.
	att, err := Open(Config{Path: path, Seed: 9849381})
	require.NoError(t, err)
	defer att.Close()
	assert.Equal(t, 128, att.Capacity())
	assert.Equal(t, 100, att.RecordSize())
	v, err := att.Get([]byte("sess"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	require.NoError(t, att.Set([]byte("other"), []byte("bob"), time.Time{}))
	v, err = creator.Get([]byte("other"))
	require.NoError(t, err)
	assert.Equal(t, "bob", string(v))
	assert.Equal(t, creator.SectionSize(), att.SectionSize())
}

func TestCreatorReusesSameShape(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.table")
	cfg := Config{Path: path, Create: true, ElementCount: 64, RecordSize: 64, Seed: 7}
	first, err := Open(cfg)
	require.NoError(t, err)
	require.NoError(t, first.Set([]byte("kept"), []byte("across restarts"), time.Time{}))
	require.NoError(t, first.Close())

	second, err := Open(cfg)
	require.NoError(t, err)
	defer second.Close()
	v, err := second.Get([]byte("kept"))
	require.NoError(t, err)
	assert.Equal(t, "across restarts", string(v))
}

func TestShapeMismatch(t *testing.T) {
	base := Config{ElementCount: 64, RecordSize: 64, MaxKeySize: 32, Seed: 7, Shards: 2}
	tests := []struct {
		name  string
		apply func(*Config)
		field string
	}{
		{"el_count", func(c *Config) { c.ElementCount = 65 }, "el_count"},
		{"record_size", func(c *Config) { c.RecordSize = 384 }, "record_size"},
		{"max_key_size", func(c *Config) { c.MaxKeySize = 16 }, "max_key_size"},
		{"seed", func(c *Config) { c.Seed = 9849381 }, "seed"},
		{"shards", func(c *Config) { c.Shards = 4 }, "shards"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.table")
			cfg := base
			cfg.Path = path
			orig := openTest(t, cfg)
			require.NoError(t, orig.Set([]byte("k"), []byte("v"), time.Time{}))

			other := cfg
			tt.apply(&other)
			for _, create := range []bool{false, true} {
				other.Create = create
				_, err := Open(other)
				require.ErrorIs(t, err, ErrLayoutMismatch, "create=%v", create)
				var le *LayoutError
				require.True(t, errors.As(err, &le))
				assert.Equal(t, tt.field, le.Field)
				assert.Contains(t, err.Error(), tt.field)
			}
			// The refused opens changed nothing.
			v, err := orig.Get([]byte("k"))
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))

			// A creator that asks to replace it gets a new, empty section.
			other.Replace = true
			repl, err := Open(other)
			require.NoError(t, err)
			defer repl.Close()
			_, err = repl.Get([]byte("k"))
			require.ErrorIs(t, err, ErrNotFound)
			require.NoError(t, repl.Verify())
			// The old mapping still works for those who had it.
			v, err = orig.Get([]byte("k"))
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))
		})
	}
}

func TestBadSections(t *testing.T) {
	dir := t.TempDir()
	good := openTest(t, Config{Path: filepath.Join(dir, "good.table"), ElementCount: 32, RecordSize: 32})
	goodBytes, err := os.ReadFile(good.Path())
	require.NoError(t, err)

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	corrupt := func(off int, b ...byte) []byte {
		c := append([]byte(nil), goodBytes...)
		copy(c[off:], b)
		return c
	}
	tests := []struct {
		name string
		path string
		want error
		msg  string
	}{
		{"missing", filepath.Join(dir, "nope.table"), os.ErrNotExist, "is its creator running"},
		{"empty", write("empty", nil), ErrNotTable, "truncated"},
		{"short header", write("short", goodBytes[:100]), ErrNotTable, "truncated"},
		{"truncated body", write("trunc", goodBytes[:len(goodBytes)-1]), ErrNotTable, "truncated"},
		{"extended", write("ext", append(append([]byte(nil), goodBytes...), 0)), ErrNotTable, "extended"},
		{"garbage", write("garbage", []byte(string(make([]byte, 4096)))), ErrNotTable, "bad magic"},
		{"other version", write("ver", corrupt(8, 9)), ErrNotTable, "layout version 9"},
		{"unfinished", write("unfinished", corrupt(12, 0, 0, 0, 0)), ErrNotTable, "never finished"},
		{"zero el_count", write("zeroel", corrupt(16, 0, 0, 0, 0)), ErrNotTable, "el_count 0"},
		{"absurd record_size", write("absurd", corrupt(20, 0xff, 0xff, 0xff, 0xff)), ErrNotTable, "record_size"},
		{"odd shards", write("shards", corrupt(28, 3)), ErrNotTable, "shards 3"},
		{"directory", dir, syscall.EISDIR, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(Config{Path: tt.path})
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Contains(t, err.Error(), tt.path)
		})
	}
	t.Run("creator refuses garbage without Replace", func(t *testing.T) {
		p := write("garbage2", []byte("not a table at all"))
		_, err := Open(Config{Path: p, Create: true, ElementCount: 8, RecordSize: 8})
		require.ErrorIs(t, err, ErrNotTable)
		assert.Contains(t, err.Error(), "Replace")
		var logged bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logged, nil))
		tb, err := Open(Config{Path: p, Create: true, Replace: true, ElementCount: 8, RecordSize: 8, Logger: log})
		require.NoError(t, err)
		require.NoError(t, tb.Verify())
		require.NoError(t, tb.Close())
		assert.Contains(t, logged.String(), "level=WARN msg=\"sessioncache: replaced the file that was there\"")
		assert.Contains(t, logged.String(), "not a session table", "the warning says why")
	})
}

func TestBadConfigs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative el_count", Config{ElementCount: -1}, "el_count"},
		{"absurd el_count", Config{ElementCount: MaxElementCount + 1}, "el_count"},
		{"negative record_size", Config{RecordSize: -5}, "record_size"},
		{"absurd record_size", Config{RecordSize: MaxRecordSize + 1}, "record_size"},
		{"section too large", Config{ElementCount: MaxElementCount, RecordSize: MaxRecordSize}, "el_count"},
		{"key larger than record", Config{RecordSize: 16, MaxKeySize: 17}, "max_key_size"},
		{"negative shards", Config{Shards: -1}, "shards"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Create = true
			tt.cfg.Path = filepath.Join(dir, tt.name)
			_, err := Open(tt.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.field)
			_, statErr := os.Stat(tt.cfg.Path)
			assert.True(t, os.IsNotExist(statErr), "a refused config must create no file")
		})
	}
	t.Run("unwritable path", func(t *testing.T) {
		_, err := Open(Config{Create: true, Path: filepath.Join(dir, "no", "such", "dir", "t.table")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "create table")
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes into read-only directories")
		}
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o500))
		_, err := Open(Config{Create: true, Path: filepath.Join(ro, "t.table")})
		require.ErrorIs(t, err, os.ErrPermission)
	})
	t.Run("defaults", func(t *testing.T) {
		tb := openTest(t, Config{Path: filepath.Join(dir, "defaults")})
		assert.Equal(t, DefaultElementCount, tb.Capacity())
		assert.Equal(t, DefaultRecordSize, tb.RecordSize())
		assert.Equal(t, DefaultMaxKeySize, tb.MaxKeySize())
	})
	t.Run("default path", func(t *testing.T) {
		c := Config{Seed: 0x1234}
		assert.Equal(t, "/dev/shm/globalsession-0000000000001234.table", c.resolvedPath())
	})
}

// TestSectionSize checks the memory promise: a header plus el_count records of record_size
// bytes and at most 48 bytes of overhead each.
func TestSectionSize(t *testing.T) {
	for _, tt := range []struct{ el, rs int }{{100000, 416}, {20000, 384}, {1000, 1}, {7, 1001}, {1 << 16, 4095}} {
		s, err := (&Config{ElementCount: tt.el, RecordSize: tt.rs}).createShape()
		require.NoError(t, err)
		l := layoutFor(s)
		header := l.slotsOff
		perRecord := float64(l.total-header) / float64(tt.el)
		assert.LessOrEqual(t, perRecord, float64(tt.rs+48), "el=%d rs=%d", tt.el, tt.rs)
	}
}
