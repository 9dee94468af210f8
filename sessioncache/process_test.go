package sessioncache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Cross-process tests re-execute the test binary with GS_CHILD naming a role; TestMain runs
// that role instead of the tests.

func TestMain(m *testing.M) {
	if role := os.Getenv("GS_CHILD"); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

func runChild(role string) int {
	if role == "evict-crash" {
		return evictCrash()
	}
	t, err := Open(Config{Path: os.Getenv("GS_PATH")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	defer t.Close()
	id, _ := strconv.Atoi(os.Getenv("GS_ID"))
	ops, _ := strconv.Atoi(os.Getenv("GS_OPS"))
	keys, _ := strconv.Atoi(os.Getenv("GS_KEYS"))
	switch role {
	case "mixed":
		if err := mixedLoad(t, id, ops, keys); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		return 0
	case "crash":
		installCrashHook()
		fmt.Println("running")
		rng := rand.New(rand.NewPCG(uint64(id), 1))
		for i := 0; ; i++ {
			if i == 2000 {
				fmt.Println("progress") // the parent kills at whatever point the loop has reached
			}
			// From the 1000th write on, write crash-key each time until a hook stops this
			// process there (an update goes out of place only once its record is no longer
			// among the shard's recent writes).
			if i >= 1000 && (testHookMidWrite != nil || testHookMidUpdate != nil) {
				_ = t.Set([]byte("crash-key"), checkedValue(rng, []byte("crash-key"), id, i, 200), time.Time{})
			}
			k := fmt.Appendf(nil, "key-%d", rng.IntN(keys))
			if err := t.Set(k, checkedValue(rng, k, id, i, 100+rng.IntN(200)), time.Time{}); err != nil {
				fmt.Fprintln(os.Stderr, "child set:", err)
				return 1
			}
		}
	case "huge":
		// Attached to a table on a huge-page tmpfs: say how much of this process's mapping is
		// huge, check the parent's keys, and add one.
		huge, err := t.HugePageBytes()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		for i := range keys {
			k := fmt.Appendf(nil, "huge-%d", i)
			if v, err := t.Get(k); err != nil || !bytes.Equal(v, hugeValue(k)) {
				fmt.Fprintf(os.Stderr, "child: %s: %q, %v\n", k, v, err)
				return 1
			}
		}
		if err := t.Set([]byte("from-child"), hugeValue([]byte("from-child")), time.Time{}); err != nil {
			fmt.Fprintln(os.Stderr, "child set:", err)
			return 1
		}
		fmt.Println("huge", huge)
		return 0
	case "sametag-crash":
		// crash with SetIf, and tags narrowed as withFewTags narrows them: keys share tags.
		testHookTag = func(tag uint64) uint64 { return (tag & 7) << 29 }
		installCrashHook()
		fmt.Println("running")
		rng := rand.New(rand.NewPCG(uint64(id), 1))
		for i := 0; i < 100_000; i++ {
			k := fmt.Appendf(nil, "key-%d", rng.IntN(keys))
			if i >= 500 && i%3 == 0 {
				k = []byte("crash-key")
			}
			if _, err := t.SetIf(k, checkedValue(rng, k, id, i, 100+rng.IntN(200)), time.Time{}, 0, storeAlways); err != nil {
				fmt.Fprintln(os.Stderr, "child set:", err)
				return 1
			}
		}
		fmt.Fprintln(os.Stderr, "the hook never stopped the child")
		return 1
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// installCrashHook makes a child announce "midwrite" on stdout and stop when it reaches
// crash-key, so the parent kills it while it holds a shard lock with a record half written
// (GS_HOOK=write) or two versions of an entry in use (GS_HOOK=update).
func installCrashHook() {
	pause := func(key []byte) {
		if string(key) == "crash-key" {
			fmt.Println("midwrite")
			select {}
		}
	}
	switch os.Getenv("GS_HOOK") {
	case "write":
		testHookMidWrite = pause
	case "update":
		testHookMidUpdate = pause
	}
}

// evictCrash fills a full table until its first eviction, and stops inside BeforeEvict,
// announcing the key, so the parent kills it there.
func evictCrash() int {
	t, err := Open(Config{Path: os.Getenv("GS_PATH"), BeforeEvict: func(key, _ []byte, _ time.Time) {
		fmt.Printf("evicting %s\n", key)
		select {}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	fmt.Println("running")
	for i := 0; ; i++ {
		if err := t.Set(fmt.Appendf(nil, "child-%d", i), []byte("v"), time.Time{}); err != nil {
			fmt.Fprintln(os.Stderr, "child set:", err)
			return 1
		}
	}
}

// checkedValue builds a value that names its key and writer and ends in a CRC of the rest,
// so a reader can tell a whole value from a torn or misplaced one.
func checkedValue(rng *rand.Rand, key []byte, writer, seq, size int) []byte {
	v := make([]byte, 0, size)
	v = binary.AppendUvarint(v, uint64(len(key)))
	v = append(v, key...)
	v = binary.AppendUvarint(v, uint64(writer))
	v = binary.AppendUvarint(v, uint64(seq))
	for len(v) < size-4 {
		v = append(v, byte(rng.Uint32()))
	}
	return binary.LittleEndian.AppendUint32(v, crc32.ChecksumIEEE(v))
}

// checkValue verifies a value built by checkedValue for key.
func checkValue(key, v []byte) error {
	if len(v) < 5 {
		return fmt.Errorf("value of %q is %d bytes, too short", key, len(v))
	}
	body := v[:len(v)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(v[len(v)-4:]) {
		return fmt.Errorf("value of %q fails its checksum (torn)", key)
	}
	n, w := binary.Uvarint(body)
	if w <= 0 || int(n) > len(body)-w || string(body[w:w+int(n)]) != string(key) {
		return fmt.Errorf("value read for %q belongs to another key", key)
	}
	return nil
}

func mixedLoad(t *Table, id, ops, keys int) error {
	rng := rand.New(rand.NewPCG(uint64(id), 2))
	buf := make([]byte, 0, t.RecordSize())
	for i := range ops {
		k := fmt.Appendf(nil, "key-%d", rng.IntN(keys))
		switch r := rng.IntN(10); {
		case r < 4:
			if err := t.Set(k, checkedValue(rng, k, id, i, 100+rng.IntN(200)), time.Time{}); err != nil {
				return err
			}
		case r < 5:
			if _, err := t.Delete(k); err != nil {
				return err
			}
		default:
			v, _, err := t.GetAppend(buf[:0], k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := checkValue(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// child is a running copy of the test binary in some role.
type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

func startChild(tb testing.TB, role, path string, env ...string) *child {
	tb.Helper()
	exe, err := os.Executable()
	require.NoError(tb, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), append([]string{"GS_CHILD=" + role, "GS_PATH=" + path}, env...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	c := &child{cmd: cmd, stdout: bufio.NewReader(out), stderr: &syncBuffer{}}
	cmd.Stderr = c.stderr
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return c
}

// expectLine reads the child's next stdout line and checks it.
func (c *child) expectLine(tb testing.TB, want string) {
	tb.Helper()
	line, err := c.stdout.ReadString('\n')
	require.NoError(tb, err, "child stderr: %s", c.stderr)
	require.Equal(tb, want+"\n", line)
}

func (c *child) wait(tb testing.TB) {
	tb.Helper()
	_, _ = io.Copy(io.Discard, c.stdout)
	require.NoError(tb, c.cmd.Wait(), "child stderr: %s", c.stderr)
}

func (c *child) kill(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.cmd.Process.Signal(syscall.SIGKILL))
}

func (c *child) reap() { _ = c.cmd.Wait() }

// TestCrossProcessConcurrentReadWrite runs several processes reading, writing and deleting
// the same keys, with more keys than records so eviction runs all the time. Every value any
// process reads must be one some process wrote whole, for the key it asked for.
func TestCrossProcessConcurrentReadWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.table")
	tb := openTest(t, Config{Path: path, ElementCount: 2048, RecordSize: 384, Shards: 8})
	ops := 40000
	if testing.Short() {
		ops = 5000
	}
	env := []string{"GS_OPS=" + strconv.Itoa(ops), "GS_KEYS=4096"}
	var kids []*child
	for i := range 3 {
		kids = append(kids, startChild(t, "mixed", path, append(env, "GS_ID="+strconv.Itoa(i+1))...))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Go(func() { errs <- mixedLoad(tb, 100+g, ops, 4096) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, k := range kids {
		k.wait(t)
	}
	require.NoError(t, tb.Verify())
	st := tb.Stats()
	assert.NotZero(t, st.Evictions, "the load should overflow the table")
	assert.NotZero(t, st.Hits)
	t.Logf("stats after %d processes x %d ops: %+v", 5, ops, st)
}

// TestCrashWhileWriting kills processes with SIGKILL while they hold a shard lock with a
// record half written (and, for good measure, at random points of a write loop), while
// other processes keep working. The survivors must make progress, read no torn value, and
// Verify must pass.
func TestCrashWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.table")
	tb := openTest(t, Config{Path: path, ElementCount: 1024, RecordSize: 384, Shards: 4})
	survivors := []*child{
		startChild(t, "mixed", path, "GS_ID=1", "GS_OPS=100000", "GS_KEYS=2000"),
		startChild(t, "mixed", path, "GS_ID=2", "GS_OPS=100000", "GS_KEYS=2000"),
	}
	rounds := 8
	for round := range rounds {
		before := tb.Stats().Recoveries
		c := startChild(t, "crash", path, "GS_HOOK=write", "GS_ID="+strconv.Itoa(10+round), "GS_KEYS=2000")
		c.expectLine(t, "running")
		c.expectLine(t, "midwrite")
		c.kill(t)
		if round%2 == 0 {
			c.reap() // odd rounds leave a zombie: it must count as dead too
		}
		start := time.Now()
		v, err := tb.Get([]byte("crash-key"))
		took := time.Since(start)
		if err == nil {
			require.NoError(t, checkValue([]byte("crash-key"), v))
		} else {
			require.ErrorIs(t, err, ErrNotFound)
		}
		require.NoError(t, tb.Verify())
		assert.Greater(t, tb.Stats().Recoveries, before, "the dead writer's lock was not recovered")
		t.Logf("round %d: the lock of a killed writer was recovered after %v", round, took)
		c.reap()
	}
	// Kills at arbitrary points of a tight write loop.
	for round := range 6 {
		c := startChild(t, "crash", path, "GS_ID="+strconv.Itoa(100+round), "GS_KEYS=2000")
		c.expectLine(t, "running")
		c.expectLine(t, "progress")
		c.kill(t)
		c.reap()
		require.NoError(t, tb.Verify())
	}
	for _, s := range survivors {
		s.wait(t)
	}
	require.NoError(t, tb.Verify())
	require.NoError(t, mixedLoad(tb, 99, 2000, 2000))
}

// TestCrashWhileUpdatingOutOfPlace kills writers in the middle of updates while the table
// has free records: half-way through writing a record (in place, which drops the entry, or
// out of place, which keeps the old version), and with an out-of-place update's new version
// whole before the old one is given up, which must keep the entry, old or new. No value read
// afterwards is torn, and Verify passes.
func TestCrashWhileUpdatingOutOfPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.table")
	tb := openTest(t, Config{Path: path, ElementCount: 1024, RecordSize: 384, Shards: 4})
	survivor := startChild(t, "mixed", path, "GS_ID=1", "GS_OPS=50000", "GS_KEYS=300")
	rng := rand.New(rand.NewPCG(7, 7))
	key := []byte("crash-key")
	for round := range 6 {
		crashOnKey(t, tb, path, rng, key, []string{"write", "update"}[round%2], round, 20+round)
	}
	survivor.wait(t)
	require.NoError(t, tb.Verify())
	assert.Less(t, tb.Len(), tb.Capacity(), "the table had free records throughout")
}

// crashOnKey sets key in tb, then has child process id (writing 300 other keys) stop while
// it writes key (hook "write") or updates it (hook "update"), kills it with SIGKILL, and
// checks what it left in key and that the table verifies.
func crashOnKey(t *testing.T, tb *Table, path string, rng *rand.Rand, key []byte, hook string, round, id int) {
	t.Helper()
	require.NoError(t, tb.Set(key, checkedValue(rng, key, 0, round, 200), time.Time{}))
	c := startChild(t, "crash", path, "GS_HOOK="+hook, "GS_ID="+strconv.Itoa(id), "GS_KEYS=300")
	c.expectLine(t, "running")
	c.expectLine(t, "midwrite")
	c.kill(t)
	c.reap()
	checkCrashKey(t, tb, key, hook, round)
	require.NoError(t, tb.Verify())
}

// checkCrashKey checks what a writer killed while it wrote key (hook "write") or updated it
// (hook "update") left: whole if there, and there after an update.
func checkCrashKey(t *testing.T, tb *Table, key []byte, hook string, round int) {
	t.Helper()
	v, err := tb.Get(key)
	if hook == "update" {
		require.NoError(t, err, "round %d: the entry was lost", round)
	}
	if err == nil {
		require.NoError(t, checkValue(key, v))
	} else {
		require.ErrorIs(t, err, ErrNotFound)
	}
}

// TestCrashWithSharedTags kills a process half-way through SetIf writes and updates in a
// shard whose keys share tags: after the next writer recovers the lock and repairs the
// shard, every key is still there, whole, each in a slot of its own.
func TestCrashWithSharedTags(t *testing.T) {
	withFewTags(t)
	path := filepath.Join(t.TempDir(), "s.table")
	tb := openTest(t, Config{Path: path, ElementCount: 256, RecordSize: 384, Shards: 1})
	const keys = 120
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range keys {
		k := fmt.Appendf(nil, "key-%d", i)
		_, err := tb.SetIf(k, checkedValue(rng, k, 0, i, 150), time.Time{}, 0, storeAlways)
		require.NoError(t, err)
	}
	key := []byte("crash-key")
	for round := range 4 {
		hook := []string{"write", "update"}[round%2]
		_, err := tb.SetIf(key, checkedValue(rng, key, 0, round, 200), time.Time{}, 0, storeAlways)
		require.NoError(t, err)
		c := startChild(t, "sametag-crash", path, "GS_HOOK="+hook, "GS_ID="+strconv.Itoa(30+round),
			"GS_KEYS="+strconv.Itoa(keys))
		c.expectLine(t, "running")
		c.expectLine(t, "midwrite")
		c.kill(t)
		c.reap()
		require.NoError(t, tb.Verify(), "round %d", round) // recovers the lock, repairs the shard
		for i := range keys {
			k := fmt.Appendf(nil, "key-%d", i)
			v, err := tb.Get(k)
			require.NoError(t, err, "round %d: key %d was lost", round, i)
			require.NoError(t, checkValue(k, v), "round %d: key %d", round, i)
		}
		checkCrashKey(t, tb, key, hook, round)
	}
	assert.NotZero(t, sameTagsOf(tb), "the keys share tags")
}

// TestCrashInsideBeforeEvict kills a process while BeforeEvict runs: the entry it was about
// to evict must still be in the table, so a caller that records evictions durably in
// BeforeEvict never loses one to a crash.
func TestCrashInsideBeforeEvict(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.table")
	tb := openTest(t, Config{Path: path, ElementCount: 64, RecordSize: 64, Shards: 1})
	for i := range 64 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "k%d", i), []byte("v"), time.Time{}))
	}
	c := startChild(t, "evict-crash", path)
	c.expectLine(t, "running")
	line, err := c.stdout.ReadString('\n')
	require.NoError(t, err, "child stderr: %s", c.stderr)
	victim := strings.TrimSuffix(strings.TrimPrefix(line, "evicting "), "\n")
	require.True(t, strings.HasPrefix(victim, "k"), "the first eviction takes one of the parent's entries: %q", line)
	c.kill(t)
	c.reap()
	v, err := tb.Get([]byte(victim))
	require.NoError(t, err, "%s was being evicted when its process died: it must still be there", victim)
	assert.Equal(t, "v", string(v))
	require.NoError(t, tb.Verify())
	assert.Equal(t, 64, tb.Len())
}
