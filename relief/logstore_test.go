package relief

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

func TestMain(m *testing.M) {
	if os.Getenv("GS_LOG_WRITER") != "" {
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
	v, _, err := entryParts(r.Get([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, "1bis", string(v))
	v, exp, err := entryParts(r.Get([]byte("b")))
	require.NoError(t, err)
	assert.Equal(t, "2", string(v))
	assert.False(t, exp.IsZero())
	_, _, err = entryParts(r.Get([]byte("gone")))
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = entryParts(r.Get([]byte("past")))
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
	assert.Less(t, s.Size(), int64(16<<10), "the log stays small when it is mostly dead")
	require.NoError(t, s.Close())
	r := openLog(t, path)
	assert.Equal(t, 20, r.Len())
	v, _, err := entryParts(r.Get([]byte("k19")))
	require.NoError(t, err)
	assert.Equal(t, "v4999", string(v))
}

// TestLogStoreSurvivesKill kills a process that writes as fast as it can (compacting as it
// goes) and checks that every entry it acknowledged is there when the log is reopened.
func TestLogStoreSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aging.log")
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "GS_LOG_WRITER="+path)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		last, _ = strconv.Atoi(sc.Text())
		if last >= 3000 {
			break
		}
	}
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
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
		v, _, err := entryParts(r.Get(fmt.Appendf(nil, "k%d", k)))
		require.NoError(t, err, "k%d", k)
		n, _ := strconv.Atoi(string(v[1:]))
		assert.GreaterOrEqual(t, n, i, "k%d lost its acknowledged value v%d", k, i)
	}
}

// put stores e in s, for tests that only care whether it failed.
func put(s Store, key []byte, e sessioncache.Entry) error {
	_, err := s.Put(key, e)
	return err
}

// entryParts splits a Get's answer into value, expiry and error.
func entryParts(e sessioncache.Entry, err error) ([]byte, time.Time, error) {
	return e.Value, e.Expiry, err
}
