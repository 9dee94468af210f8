package relief

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

func TestMain(m *testing.M) {
	if os.Getenv("GS_LOG_WRITER") != "" {
		if step := os.Getenv("GS_LOG_KILL_IN_COMPACTION"); step != "" {
			testHookCompaction = func(at string) {
				if at == step {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
		os.Exit(logWriter(os.Getenv("GS_LOG_WRITER")))
	}
	os.Exit(m.Run())
}

// logWriter sets keys forever, printing each key once Set has returned (acknowledged).
func logWriter(path string) int {
	s, err := OpenLog(LogConfig{Path: path, CompactAt: 1 << 14})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		k := fmt.Appendf(nil, "k%d", i%500)
		if err := put(s, k, sessioncache.Entry{Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(w, "%d\n", i)
		w.Flush()
	}
}

func openLog(t *testing.T, path string) *LogStore {
	t.Helper()
	s, err := OpenLog(LogConfig{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLogStoreReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aging.log")
	s := openLog(t, path)
	require.NoError(t, put(s, []byte("a"), sessioncache.Entry{Value: []byte("1")}))
	require.NoError(t, put(s, []byte("b"), sessioncache.Entry{Value: []byte("2"), Expiry: time.Now().Add(time.Hour)}))
	require.NoError(t, put(s, []byte("gone"), sessioncache.Entry{Value: []byte("x"), Expiry: time.Now().Add(time.Hour)}))
	require.NoError(t, put(s, []byte("gone"), sessioncache.Entry{Deleted: true}))
	require.NoError(t, put(s, []byte("past"), sessioncache.Entry{Value: []byte("x"), Expiry: time.Now().Add(-time.Second)}))
	require.NoError(t, put(s, []byte("a"), sessioncache.Entry{Value: []byte("1bis")}))
	require.NoError(t, s.Close())

	r := openLog(t, path)
	v, _, err := entryParts(r.Get(context.Background(), []byte("a")))
	require.NoError(t, err)
	assert.Equal(t, "1bis", string(v))
	v, exp, err := entryParts(r.Get(context.Background(), []byte("b")))
	require.NoError(t, err)
	assert.Equal(t, "2", string(v))
	assert.False(t, exp.IsZero())
	_, _, err = entryParts(r.Get(context.Background(), []byte("gone")))
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = entryParts(r.Get(context.Background(), []byte("past")))
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, 3, r.Len(), "a, b and the tombstone of gone")
}

func TestLogStoreCutsTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aging.log")
	s := openLog(t, path)
	for i := range 10 {
		require.NoError(t, put(s, fmt.Appendf(nil, "k%d", i), sessioncache.Entry{Value: []byte("value")}))
	}
	size := s.Size()
	require.NoError(t, s.Close())
	for _, tc := range []struct {
		name  string
		spoil func(b []byte) []byte
		keep  int
	}{
		{"half a record", func(b []byte) []byte { return b[:len(b)-5] }, 9},
		{"a flipped byte", func(b []byte) []byte { b[len(b)-3] ^= 0xff; return b }, 9},
		{"garbage length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3) }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			p := filepath.Join(t.TempDir(), "spoiled.log")
			require.NoError(t, os.WriteFile(p, tc.spoil(append([]byte(nil), b[:size]...)), 0o600))
			r := openLog(t, p)
			assert.Equal(t, tc.keep, r.Len())
			// The log goes on working after the cut.
			require.NoError(t, put(r, []byte("after"), sessioncache.Entry{Value: []byte("cut")}))
			require.NoError(t, r.Close())
			r2 := openLog(t, p)
			assert.Equal(t, tc.keep+1, r2.Len())
		})
	}
}

func TestLogStoreCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aging.log")
	s, err := OpenLog(LogConfig{Path: path, CompactAt: 8 << 10})
	require.NoError(t, err)
	defer s.Close()
	for i := range 5000 {
		require.NoError(t, put(s, fmt.Appendf(nil, "k%d", i%20), sessioncache.Entry{Value: fmt.Appendf(nil, "v%d", i)}))
	}
	// Compaction runs in the background: let the one in progress end, and one more write
	// start the next if the log grew meanwhile.
	s.compactions.Wait()
	require.NoError(t, put(s, []byte("k0"), sessioncache.Entry{Value: []byte("v5000")}))
	s.compactions.Wait()
	assert.Less(t, s.Size(), int64(16<<10), "the log stays small when it is mostly dead")
	require.NoError(t, s.Close())
	r := openLog(t, path)
	assert.Equal(t, 20, r.Len())
	v, _, err := entryParts(r.Get(context.Background(), []byte("k19")))
	require.NoError(t, err)
	assert.Equal(t, "v4999", string(v))
}

// TestLogStoreSurvivesKill kills a process that writes as fast as it can (compacting as it
// goes) and checks that every entry it acknowledged is there when the log is reopened.
func TestLogStoreSurvivesKill(t *testing.T) {
	for _, at := range []string{"", "written", "renamed"} {
		t.Run("kill in compaction at "+at, func(t *testing.T) { killLogWriter(t, at) })
	}
}

// killLogWriter runs logWriter in a child process and kills it: with at empty after 3,000
// acknowledged writes, else at that step of its first compaction. Every write it
// acknowledged is in the log when it is opened again.
func killLogWriter(t *testing.T, at string) {
	path := filepath.Join(t.TempDir(), "aging.log")
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "GS_LOG_WRITER="+path, "GS_LOG_KILL_IN_COMPACTION="+at)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		last, _ = strconv.Atoi(sc.Text())
		if at == "" && last >= 3000 {
			break
		}
	}
	// With at set, the writer kills itself there, and its output ends.
	cmd.Process.Kill()
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the writer was killed, it did not exit")
	require.GreaterOrEqual(t, last, 500, "every key was written at least once before the kill")
	// Lines printed after our last read were acknowledged too; take the highest.
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			last = n
		}
	}
	r := openLog(t, path)
	for k := range 500 {
		// The last acknowledged write of key k is the largest i <= last with i%500 == k.
		i := last - ((last-k)%500+500)%500
		v, _, err := entryParts(r.Get(context.Background(), fmt.Appendf(nil, "k%d", k)))
		require.NoError(t, err, "k%d", k)
		n, _ := strconv.Atoi(string(v[1:]))
		assert.GreaterOrEqual(t, n, i, "k%d lost its acknowledged value v%d", k, i)
	}
}

// put stores e in s, for tests that only care whether it failed.
func put(s Store, key []byte, e sessioncache.Entry) error {
	_, err := s.Put(context.Background(), key, e)
	return err
}

// entryParts splits a Get's answer into value, expiry and error.
func entryParts(e sessioncache.Entry, err error) ([]byte, time.Time, error) {
	return e.Value, e.Expiry, err
}

// faultyFile writes half of its failAt-th write (counting from 1) and fails it with ENOSPC;
// with truncateFails, it cannot cut that half off either. Every other call goes through.
type faultyFile struct {
	logFile
	writes        atomic.Int64
	failAt        int64
	truncateFails bool
}

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	if f.writes.Add(1) == f.failAt {
		n, _ := f.logFile.WriteAt(b[:len(b)/2], off)
		return n, syscall.ENOSPC
	}
	return f.logFile.WriteAt(b, off)
}

func (f *faultyFile) Truncate(size int64) error {
	if f.truncateFails && f.writes.Load() >= f.failAt {
		return syscall.EIO
	}
	return f.logFile.Truncate(size)
}

// TestLogStoreKeepsWhatItAcknowledgedThroughAFailedWrite: a write that fails half-way
// (a full disk) is not acknowledged, and every write acknowledged before and after it is
// in the log when it is opened again. When the torn half cannot be cut off, the store
// acknowledges nothing more until it is opened again. A compaction whose new file fails
// leaves the store on its old file, counters and all.
func TestLogStoreKeepsWhatItAcknowledgedThroughAFailedWrite(t *testing.T) {
	for _, tc := range []struct {
		name          string
		failAt        int64
		truncateFails bool
		compactAt     int64
	}{
		{"a short write", 40, false, 0},
		{"a short write that cannot be cut off", 40, true, 0},
		{"a short write in a compaction", 0, false, 2 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "aging.log")
			var files []*faultyFile
			wrapLogFile = func(f *os.File) logFile {
				ff := &faultyFile{logFile: f, failAt: tc.failAt, truncateFails: tc.truncateFails}
				if tc.failAt == 0 && len(files) == 1 { // the first compaction's new file
					ff.failAt = 5
				}
				files = append(files, ff)
				return ff
			}
			t.Cleanup(func() { wrapLogFile = func(f *os.File) logFile { return f } })
			s, err := OpenLog(LogConfig{Path: path, CompactAt: tc.compactAt})
			require.NoError(t, err)
			acked := map[string]string{}
			failed := 0
			for i := range 200 {
				k, v := fmt.Sprintf("k%d", i%50), fmt.Sprintf("v%d", i)
				if err := put(s, []byte(k), sessioncache.Entry{Value: []byte(v)}); err != nil {
					failed++
					continue
				}
				acked[k] = v
				if tc.compactAt > 0 && i%20 == 19 {
					s.compactions.Wait() // one compaction at a time, each before the next writes
				}
			}
			switch {
			case tc.truncateFails:
				assert.Equal(t, 200-39, failed, "nothing is acknowledged after a torn write")
			case tc.compactAt == 0:
				assert.Equal(t, 1, failed, "only the torn write fails")
			default:
				assert.Zero(t, failed, "a failed compaction fails no write")
				assert.Greater(t, len(files), 2, "compactions went on after the failed one")
			}
			size := s.Size()
			require.NoError(t, s.Close())
			wrapLogFile = func(f *os.File) logFile { return f }
			r := openLog(t, path)
			assert.Equal(t, size, r.Size(), "the log ends where the store said")
			for k, v := range acked {
				got, _, err := entryParts(r.Get(context.Background(), []byte(k)))
				require.NoError(t, err, k)
				assert.Equal(t, v, string(got), k)
			}
		})
	}
}
