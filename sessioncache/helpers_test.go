package sessioncache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openTest creates a table in a temporary directory and closes it when the test ends.
func openTest(tb testing.TB, cfg Config) *Table {
	tb.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(tb.TempDir(), "test.table")
	}
	cfg.Create = true
	t, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { t.Close() })
	return t
}

// fakeClock drives a table's notion of now.
type fakeClock struct{ now int64 }

func (c *fakeClock) install(t *Table) { t.now = func() int64 { return c.now } }

func (c *fakeClock) at(d time.Duration) time.Time { return time.Unix(0, c.now+int64(d)) }

func (c *fakeClock) advance(d time.Duration) { c.now += int64(d) }

var (
	osStat   = os.Stat
	osGetpid = os.Getpid
)

// hugeValue is the value the huge-page tests store under key k.
func hugeValue(k []byte) []byte { return append([]byte("value of "), k...) }
