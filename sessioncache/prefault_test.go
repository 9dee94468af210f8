package sessioncache

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// residentKB returns the resident size of this process's mappings of path, from
// /proc/self/smaps.
func residentKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in, kb := false, 0
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = strings.HasSuffix(line, path)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			kb += n
		}
	}
	return kb
}

// A process that attaches with Prefault has the whole section resident when Open returns,
// while another writes to it, and the entries are what the writer wrote.
func TestPrefaultBringsTheSectionIn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("resident size is read from Linux's /proc")
	}
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "prefault-test"); err == nil { // tmpfs, where tables live
		dir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	path := dir + "/prefault.table"
	w := openTest(t, Config{Path: path, ElementCount: 20000, RecordSize: 400})
	const keys = 5000
	value := func(i int) []byte { return fmt.Appendf(nil, "value %d %s", i, strings.Repeat("x", 300)) }
	for i := range keys {
		if err := w.Set(fmt.Appendf(nil, "k%d", i), value(i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	before := residentKB(t, path)
	size := int(w.SectionSize() / 1024)
	if before >= size {
		t.Fatalf("the writer's mapping is already all resident (%d of %d kB): nothing to show", before, size)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // keeps writing while the other attaches
		for i := 0; ; i = (i + 1) % keys {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Set(fmt.Appendf(nil, "k%d", i), value(i), time.Time{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	r, err := Open(Config{Path: path, Prefault: true})
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	defer r.Close()
	resident := residentKB(t, path) - before // the writer's mapping only grows meanwhile
	close(stop)
	wg.Wait()
	if resident < size {
		t.Errorf("after Open with Prefault %d kB of the %d kB section are resident in its mapping", resident, size)
	}
	for i := range keys {
		got, _, err := r.GetAppend(nil, fmt.Appendf(nil, "k%d", i))
		if err != nil || string(got) != string(value(i)) {
			t.Fatalf("k%d: %q, %v", i, got, err)
		}
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}

// The page-by-page way, for systems without the call, changes nothing either.
func TestTouchPagesChangesNothing(t *testing.T) {
	tbl := openTest(t, Config{ElementCount: 4000, RecordSize: 200})
	for i := range 1000 {
		if err := tbl.Set(fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := append([]byte(nil), tbl.mem...)
	touchPages(tbl.mem)
	if string(snapshot) != string(tbl.mem) {
		t.Fatal("touching the pages changed the section")
	}
	if err := tbl.Verify(); err != nil {
		t.Fatal(err)
	}
}
