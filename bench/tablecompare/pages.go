package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/globalsession/globalsession/sessioncache"
	"golang.org/x/sys/unix"
)

// -huge runs every cache on 2 MiB pages, so that the comparison does not turn on the page
// size: the table's directory becomes a tmpfs of its own, mounted with huge=advise (the
// table asks for huge pages on its mapping, see sessioncache.Table.HugePageBytes), and the
// system's transparent huge pages for anonymous memory, where fastcache and freecache keep
// their entries (and Go its heap), are set to "always" for the run. Both are put back when
// the program ends or is interrupted. It needs root.

const thpEnabled = "/sys/kernel/mm/transparent_hugepage/enabled"

var (
	undoMu sync.Mutex
	undos  []func() // run in reverse order by undoPages
)

// setUpHugePages applies -huge and returns the table directory to use.
func setUpHugePages() (string, error) {
	dir, err := os.MkdirTemp("", "tablecompare-huge-")
	if err != nil {
		return "", err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=90%,huge=advise"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("-huge: mount a tmpfs with huge=advise on %s (needs root): %w", dir, err)
	}
	addUndo(func() {
		// Detached, so that a table still mapped (an exit on an error) does not keep it mounted.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "tablecompare: unmount %s: %v\n", dir, err)
			return
		}
		os.Remove(dir)
	})
	old, err := os.ReadFile(thpEnabled)
	if err != nil {
		return "", fmt.Errorf("-huge: %w", err)
	}
	was, ok := bracketed(string(old))
	if !ok {
		return "", fmt.Errorf("-huge: %s says %q, with no setting in brackets", thpEnabled, old)
	}
	if err := os.WriteFile(thpEnabled, []byte("always"), 0); err != nil {
		return "", fmt.Errorf("-huge: set %s to always: %w", thpEnabled, err)
	}
	addUndo(func() {
		if err := os.WriteFile(thpEnabled, []byte(was), 0); err != nil {
			fmt.Fprintf(os.Stderr, "tablecompare: put %s back to %s: %v\n", thpEnabled, was, err)
		}
	})
	return dir, nil
}

// bracketed returns the selected value of a sysfs setting such as "always [madvise] never".
func bracketed(s string) (string, bool) {
	_, rest, ok := strings.Cut(s, "[")
	if !ok {
		return "", false
	}
	v, _, ok := strings.Cut(rest, "]")
	return v, ok && v != ""
}

func addUndo(f func()) {
	undoMu.Lock()
	defer undoMu.Unlock()
	undos = append(undos, f)
}

// undoPages puts back what setUpHugePages changed.
func undoPages() {
	undoMu.Lock()
	defer undoMu.Unlock()
	for i := len(undos) - 1; i >= 0; i-- {
		undos[i]()
	}
	undos = nil
}

// pageReport says how much of the table's mapping, and of this process's anonymous memory
// (fastcache's and freecache's entries, Go's heap), is on huge pages.
func pageReport(t *sessioncache.Table) string {
	huge, err := t.HugePageBytes()
	table := fmt.Sprintf("%d of %d MiB", huge>>20, t.SectionSize()>>20)
	if err != nil {
		table = err.Error()
	}
	anon := "unknown"
	if kb, err := rollupField("AnonHugePages:"); err == nil {
		anon = fmt.Sprintf("%d MiB", kb>>10)
	}
	return fmt.Sprintf("table on huge pages: %s; anonymous memory on huge pages: %s", table, anon)
}

// rollupField returns a field of /proc/self/smaps_rollup in kB.
func rollupField(name string) (int64, error) {
	data, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in smaps_rollup", name)
}
