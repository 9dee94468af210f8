package sessioncache

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of 64 MiB with the given huge= option on a directory of its own
// and unmounts it when the test ends. Mounting needs root (CAP_SYS_ADMIN), and the option a
// kernel with transparent huge pages for tmpfs that does not override it system-wide:
// elsewhere the test is skipped, saying why.
func mountTmpfs(t *testing.T, huge string) string {
	t.Helper()
	setting, err := os.ReadFile(shmemEnabled)
	if err != nil {
		t.Skipf("this kernel has no transparent huge pages for tmpfs: %v", err)
	}
	if strings.Contains(string(setting), "[force]") || strings.Contains(string(setting), "[deny]") {
		t.Skipf("%s overrides every tmpfs's huge= option: %s", shmemEnabled, bytes.TrimSpace(setting))
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m,huge="+huge); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mounting a tmpfs needs root: %v", err)
		}
		t.Fatalf("mount tmpfs huge=%s on %s: %v", huge, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

const shmemEnabled = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

// fillHuge creates a table of about 24 MiB at path and sets n keys.
func fillHuge(t *testing.T, path string, n int, prefault bool, log *bytes.Buffer) *Table {
	t.Helper()
	tb, err := Open(Config{Path: path, Create: true, ElementCount: 50_000, RecordSize: 480, Prefault: prefault,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { tb.Close() })
	for i := range n {
		k := fmt.Appendf(nil, "huge-%d", i)
		require.NoError(t, tb.Set(k, hugeValue(k), time.Time{}))
	}
	return tb
}

// TestHugePagesWhereTheFileSystemAllows puts a table on a tmpfs mounted with huge=advise,
// where pages are huge only for mappings that ask: the creator's mapping and that of a
// process that attaches later are mapped with huge pages, and both see every key.
func TestHugePagesWhereTheFileSystemAllows(t *testing.T) {
	for _, prefault := range []bool{true, false} {
		t.Run("prefault="+strconv.FormatBool(prefault), func(t *testing.T) {
			path := mountTmpfs(t, "advise") + "/huge.table"
			var log bytes.Buffer
			tb := fillHuge(t, path, 1000, prefault, &log)
			huge, err := tb.HugePageBytes()
			require.NoError(t, err)
			// Without Prefault only the pages written so far exist: the header, the
			// index and bitmap, and the records of 1000 keys, each its own huge page.
			require.Greater(t, huge, int64(0), "the creator's mapping has no huge page")
			require.Zero(t, huge%(2<<20), "huge-page bytes %d are not whole 2 MiB pages", huge)
			if prefault {
				// Every whole 2 MiB of the section (only its tail is smaller).
				require.Equal(t, tb.SectionSize()/(2<<20)*(2<<20), huge)
				require.Contains(t, log.String(), fmt.Sprintf("msg=\"sessioncache: pages\" path=%q bytes=%d on_huge_pages=%d",
					path, tb.SectionSize(), huge))
			}

			require.Greater(t, attachedHugeBytes(t, path, 1000), int64(0), "the attached process's mapping has no huge page")

			v, err := tb.Get([]byte("from-child"))
			require.NoError(t, err)
			require.Equal(t, hugeValue([]byte("from-child")), v)
			require.NoError(t, tb.Verify())
		})
	}
}

// TestNoHugePagesWhereTheFileSystemHasNone checks the fallback: on a tmpfs mounted with
// huge=never (as /dev/shm usually is) the table works on small pages and says so.
func TestNoHugePagesWhereTheFileSystemHasNone(t *testing.T) {
	path := mountTmpfs(t, "never") + "/small.table"
	var log bytes.Buffer
	tb := fillHuge(t, path, 1000, true, &log)
	require.Contains(t, log.String(), "on_huge_pages=0")
	huge, err := tb.HugePageBytes()
	require.NoError(t, err)
	require.Zero(t, huge)
	for i := range 1000 {
		k := fmt.Appendf(nil, "huge-%d", i)
		v, err := tb.Get(k)
		require.NoError(t, err)
		require.Equal(t, hugeValue(k), v)
	}
	require.NoError(t, tb.Close())
	_, err = tb.HugePageBytes()
	require.ErrorIs(t, err, ErrClosed)
}

func TestSmapsHugeBytes(t *testing.T) {
	const smaps = `7f0000000000-7f0000200000 rw-p 00000000 00:00 0
Rss:                2048 kB
ShmemPmdMapped:     2048 kB
VmFlags: rd wr mr mw me ac
7f4c6c400000-7f4c70400000 rw-s 00000000 00:27 6                          /mnt/x/a.table
Size:              65536 kB
ShmemPmdMapped:    63488 kB
FilePmdMapped:      2048 kB
VmFlags: rd wr sh mr mw me ms hg
7f4c70400000-7f4c70600000 rw-s 00000000 00:27 7                          /mnt/x/b.table
ShmemPmdMapped:     2048 kB
`
	n, err := smapsHugeBytes([]byte(smaps), 0x7f4c6c400000)
	require.NoError(t, err)
	require.Equal(t, int64(65536)<<10, n)

	_, err = smapsHugeBytes([]byte(smaps), 0x7f4c6c401000)
	require.ErrorContains(t, err, "no mapping at 0x7f4c6c401000")

	bad := strings.Replace(smaps, "63488 kB", "lots kB", 1)
	_, err = smapsHugeBytes([]byte(bad), 0x7f4c6c400000)
	require.ErrorContains(t, err, `"ShmemPmdMapped:    lots kB"`)
}

// TestCrashOnHugePages kills writers on a huge-page table in the middle of a write,
// holding a shard lock with a record half written: the next writer recovers the shard as
// on small pages, and a fresh process that attaches afterwards maps the same huge pages and
// reads every key the dead writers did not touch, whole. (Updates killed half-way are
// covered on small pages by TestCrashWhileUpdatingOutOfPlace; the page size does not enter
// that logic.)
func TestCrashOnHugePages(t *testing.T) {
	path := mountTmpfs(t, "advise") + "/crash.table"
	var log bytes.Buffer
	tb := fillHuge(t, path, 1000, true, &log)
	rng := rand.New(rand.NewPCG(3, 3))
	key := []byte("crash-key")
	for round := range 4 {
		crashOnKey(t, tb, path, rng, key, "write", round, 30+round)
	}
	require.Positive(t, tb.Stats().Recoveries)
	require.Positive(t, attachedHugeBytes(t, path, 1000), "the fresh process's mapping has no huge page")
	require.NoError(t, tb.Verify())
}

// attachedHugeBytes runs a child process that attaches to the table at path, checks keys
// huge-0 to huge-(keys-1), adds from-child, and reports its mapping's HugePageBytes.
func attachedHugeBytes(t *testing.T, path string, keys int) int64 {
	t.Helper()
	c := startChild(t, "huge", path, "GS_KEYS="+strconv.Itoa(keys))
	line, err := c.stdout.ReadString('\n')
	require.NoError(t, err, "child stderr: %s", c.stderr)
	c.wait(t)
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "huge ")), 10, 64)
	require.NoError(t, err, "child said %q", line)
	return n
}
