package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/coocood/freecache"
	"github.com/globalsession/globalsession/sessioncache"
)

// The size series (-sizes) measures how the caches' uniform Get and Set cost grows with
// the number of entries: at each size, the three caches are filled with that many keys and
// measured in interleaved rounds, with keys built in a buffer and with scattered keys, at
// 1 and 2 goroutines, and two processes on the table are compared with one. A cache that
// does not fit in the memory left is skipped at that size (shown as "-").

// fastcacheSlack and freecacheSlack are how much larger than its entries each cache is
// made in the series: both drop entries when their space wraps, which a session cache must
// not, so they get room enough to keep every key (the series counts what they kept).
// fastcache keeps only ~70% of the keys at 1.5x.
const (
	fastcacheSlack = 2.0
	freecacheSlack = 1.5
)

// seriesRow is the figures of one size.
type seriesRow struct {
	n        int
	ns       map[string][3]float64 // by cell name: ns/op of sessioncache, fastcache, freecache (0: skipped)
	kept     [3]int                // keys readable after the set cells, -1: skipped
	one, two float64               // two-process figure (uniform Gets, ops/s)
	create   time.Duration         // sessioncache: creating the table (with -prefault, faulting it in)
	fill     time.Duration         // sessioncache: filling it
	pages    string                // pageReport once the caches are filled
}

var seriesCells = []struct {
	name       string
	write      bool
	scattered  bool
	goroutines int
}{
	// Every get cell comes before the first set cell: fastcache drops entries once the Sets
	// wrap its buckets' space (a third of them at 1M), and a Get that misses costs less
	// than one that copies a value, so its Gets after the Sets would not measure the same
	// work as the other caches' (measureSize checks that each cache holds every key then).
	{"get, buffer keys", false, false, 1}, {"get, buffer keys", false, false, 2},
	{"get, scattered keys", false, true, 1}, {"get, scattered keys", false, true, 2},
	{"set, buffer keys", true, false, 1}, {"set, buffer keys", true, false, 2},
	{"set, scattered keys", true, true, 1}, {"set, scattered keys", true, true, 2},
}

func cellName(i int) string {
	return fmt.Sprintf("%s, %d goroutine(s)", seriesCells[i].name, seriesCells[i].goroutines)
}

// sizeSeries runs the series over sizes and prints its tables.
func sizeSeries(sizes []int) {
	var rows []seriesRow
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "tablecompare: %d entries\n", n)
		rows = append(rows, measureSize(n))
	}
	fmt.Println("## Uniform Get and Set against entries (ns/op; ratio to fastcache)")
	fmt.Println()
	for i := range seriesCells {
		fmt.Printf("### %s\n\n", cellName(i))
		fmt.Println("| entries | sessioncache | fastcache | freecache | vs fastcache | vs freecache |")
		fmt.Println("|--:|--:|--:|--:|--:|--:|")
		for _, r := range rows {
			ns := r.ns[cellName(i)]
			fmt.Printf("| %d | %s | %s | %s | %s | %s |\n", r.n, nsCell(ns[0]), nsCell(ns[1]), nsCell(ns[2]),
				ratioCell(ns[0], ns[1]), ratioCell(ns[0], ns[2]))
		}
		fmt.Println()
	}
	fmt.Println("## Two processes on one table, and what is kept")
	fmt.Println()
	fmt.Println("| entries | 1 process (get/s) | 2 processes | ratio | table created | filled | keys kept: sessioncache | fastcache | freecache |")
	fmt.Println("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f | %.0f | %.2fx | %v | %v | %s | %s | %s |\n", r.n, r.one, r.two, r.two/r.one,
			r.create.Round(time.Millisecond), r.fill.Round(time.Millisecond),
			keptCell(r.kept[0], r.n), keptCell(r.kept[1], r.n), keptCell(r.kept[2], r.n))
	}
	fmt.Println()
	fmt.Printf("Table opened with Prefault %v. Keys kept: readable after the set cells (fastcache %.1fx and "+
		"freecache %.1fx the entries' bytes; both drop entries when their space wraps).\n\n", *flagPrefault, fastcacheSlack, freecacheSlack)
	fmt.Println("Pages, once the caches were filled (-huge puts every cache on 2 MiB pages):")
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("- %d entries: %s\n", r.n, r.pages)
	}
	fmt.Println()
}

func nsCell(ns float64) string {
	if ns == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", ns)
}

func ratioCell(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func keptCell(kept, n int) string {
	if kept < 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d", kept, n)
}

// measureSize measures every cell of the series at n entries.
func measureSize(n int) seriesRow {
	*flagKeys = n
	row := seriesRow{n: n, ns: map[string][3]float64{}, kept: [3]int{-1, -1, -1}}
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	value := make([]byte, *flagValue)
	for i := range value {
		value[i] = byte(i)
	}
	rs := *flagKey + *flagValue
	entryBytes := n * (rs + 64)
	path := fmt.Sprintf("%s/tablecompare-%d-%d.table", *flagDir, os.Getpid(), n)
	start := time.Now()
	tbl := open(sessioncache.Config{Path: path, ElementCount: n * 5 / 4, RecordSize: rs, Prefault: *flagPrefault})
	row.create = time.Since(start)
	start = time.Now()
	fill(gsTable{tbl}, keys, value)
	row.fill = time.Since(start)
	caches := []kv{gsTable{tbl}, nil, nil}
	var fc *fastcache.Cache
	if fits(int64(fastcacheSlack * float64(entryBytes))) {
		fc = fastcache.New(int(fastcacheSlack * float64(entryBytes)))
		caches[1] = fastCache{fc}
		fill(caches[1], keys, value)
	}
	if fits(int64(freecacheSlack * float64(entryBytes))) {
		caches[2] = freeCache{freecache.NewCache(int(freecacheSlack * float64(entryBytes)))}
		fill(caches[2], keys, value)
	}
	row.pages = pageReport(tbl)
	for j, c := range caches {
		if c != nil {
			if held := readable(c, keys); held != n {
				fmt.Printf("Warning: at %d entries cache %d holds %d keys before the get cells.\n\n", n, j, held)
			}
		}
	}
	uniform := indexes(n, 1)
	for i, cell := range seriesCells {
		*flagScattered = cell.scattered
		samples := make([][]float64, len(caches))
		for range *flagRounds {
			for j, ns := range measure(caches, keys, value, uniform, cell.write, cell.goroutines) {
				if caches[j] != nil {
					samples[j] = append(samples[j], ns)
				}
			}
		}
		var ns [3]float64
		for j := range caches {
			if len(samples[j]) > 0 {
				ns[j] = median(samples[j])
			}
		}
		row.ns[cellName(i)] = ns
	}
	*flagScattered = false
	for j, c := range caches {
		if c != nil {
			row.kept[j] = readable(c, keys)
		}
	}
	// The other caches' memory goes back before the child processes map the table.
	if fc != nil {
		fc.Reset()
	}
	caches, keys = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	row.one, row.two = processRates(path)
	tbl.Remove()
	tbl.Close()
	created.Delete(path)
	return row
}

// fill sets every key.
func fill(c kv, keys [][]byte, value []byte) {
	for _, k := range keys {
		c.set(k, value)
	}
}

// readable counts the keys c holds.
func readable(c kv, keys [][]byte) int {
	held := 0
	buf := make([]byte, 0, *flagValue)
	for _, k := range keys {
		if _, ok := c.get(buf[:0], k); ok {
			held++
		}
	}
	return held
}

// fits reports whether this much more memory is available, keeping a tenth of it free.
func fits(bytes int64) bool {
	return bytes < memAvailable()*9/10
}

// memAvailable is MemAvailable from /proc/meminfo, or, where that is missing, what the
// shared-memory directory has free.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	var st syscall.Statfs_t
	if syscall.Statfs(*flagDir, &st) == nil {
		return int64(st.Bavail) * st.Bsize
	}
	return 0
}

// parseSizes reads -sizes: counts separated by commas, with k and M suffixes.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mult := 1
		switch {
		case strings.HasSuffix(f, "k"):
			mult, f = 1_000, strings.TrimSuffix(f, "k")
		case strings.HasSuffix(f, "M"):
			mult, f = 1_000_000, strings.TrimSuffix(f, "M")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a count of entries (like 10k, 1M or 250000)", f)
		}
		sizes = append(sizes, n*mult)
	}
	return sizes, nil
}
