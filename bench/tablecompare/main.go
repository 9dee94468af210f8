// Command tablecompare runs the sessioncache shared-memory table, fastcache and freecache on
// the same workloads in one process and prints each result with its ratio to the baselines.
// It also measures what only a shared table can do: two processes on one table, and the time
// until the others progress after a lock holder is killed with SIGKILL.
//
//	go run ./tablecompare            (from the bench directory)
//	go run ./tablecompare -sizes 10k,100k,1M,10M -rounds 3
//
// The second measures the size series (series.go): how uniform Gets and Sets cost as the
// caches grow, in one run.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/coocood/freecache"
	"github.com/globalsession/globalsession/sessioncache"
)

var (
	flagKeys        = flag.Int("keys", 100_000, "distinct keys")
	flagKey         = flag.Int("key-size", 32, "key bytes")
	flagValue       = flag.Int("value-size", 384, "value bytes")
	flagOps         = flag.Int("ops", 2_000_000, "operations per measurement")
	flagProcessTime = flag.Duration("process-time", time.Second, "how long each process runs in the two-process measurement")
	flagRounds      = flag.Int("rounds", 5, "measurements per cell; the median is reported")
	flagSlices      = flag.Int("slices", 10, "parts each measurement's operations are cut into, the caches taking turns part by part, "+
		"so that a change in the shared machine's memory traffic falls on every cache alike")
	flagDir       = flag.String("dir", "/dev/shm", "directory for the shared table")
	flagKills     = flag.Int("kills", 30, "SIGKILLs for the recovery measurement")
	flagScattered = flag.Bool("scattered-keys", false, "take each key from its own allocation instead of building it in a buffer")
	flagOnly      = flag.String("only", "", "run only the workloads whose name contains this, or with \"processes\" only the shared-table measurement")
	flagSizes     = flag.String("sizes", "", "measure the size series instead: uniform Gets and Sets and two processes at each of these entry counts (e.g. 10k,100k,1M,10M)")
	flagPrefault  = flag.Bool("prefault", true, "open the size series' tables with sessioncache.Config.Prefault")
	flagHuge      = flag.Bool("huge", false, "run every cache on 2 MiB pages: the table on a tmpfs of its own mounted with huge=advise, "+
		"anonymous memory with transparent huge pages set to always for the run (needs root; both put back at the end)")
	flagChild = flag.String("child", "", "internal: run as a child process in this role")
	flagPath  = flag.String("path", "", "internal: table path for a child")
)

// kv is the interface the workloads drive.
type kv interface {
	get(dst, k []byte) ([]byte, bool)
	set(k, v []byte)
}

type gsTable struct{ t *sessioncache.Table }

func (g gsTable) get(dst, k []byte) ([]byte, bool) {
	v, _, err := g.t.GetAppend(dst, k)
	return v, err == nil
}
func (g gsTable) set(k, v []byte) { _ = g.t.Set(k, v, time.Time{}) }

type fastCache struct{ c *fastcache.Cache }

func (f fastCache) get(dst, k []byte) ([]byte, bool) { return f.c.HasGet(dst, k) }
func (f fastCache) set(k, v []byte)                  { f.c.Set(k, v) }

type freeCache struct{ c *freecache.Cache }

func (f freeCache) get(dst, k []byte) ([]byte, bool) {
	v, err := f.c.GetWithBuf(k, dst[:cap(dst)])
	return v, err == nil
}
func (f freeCache) set(k, v []byte) { _ = f.c.Set(k, v, 0) }

func key(i int) []byte { return fmt.Appendf(nil, "%0*d", *flagKey, i) }

// keyer gives one goroutine the key of each operation. By default it writes key(i) into a
// buffer of its own, as a server has a key it has just read from a request at hand: with
// keys of at least 8 bytes and indexes below 10^8 it writes only the last 8 digits, as one
// word, over a prefix of zeros. With -scattered-keys it returns the i-th of the separately
// allocated keys instead, which adds the harness's own cache misses (the slice header, then
// the key) to every operation of every cache.
type keyer struct {
	keys [][]byte
	buf  []byte
	word bool // the last 8 digits are enough and are written as one word
}

func newKeyer(keys [][]byte) *keyer {
	return &keyer{keys: keys, buf: key(0), word: *flagKey >= 8 && *flagKeys <= 1e8}
}

func (k *keyer) key(i int) []byte {
	if *flagScattered {
		return k.keys[i]
	}
	if k.word {
		var w uint64
		for j := 7; j >= 0; j-- {
			w |= uint64('0'+i%10) << (8 * j)
			i /= 10
		}
		binary.LittleEndian.PutUint64(k.buf[len(k.buf)-8:], w)
		return k.buf
	}
	for j := len(k.buf) - 1; j >= 0; j-- {
		k.buf[j] = byte('0' + i%10)
		i /= 10
	}
	return k.buf
}

func main() {
	flag.Parse()
	if *flagChild != "" {
		os.Exit(child(*flagChild, *flagPath))
	}
	exitOnSignal()
	defer undoPages()
	if *flagHuge {
		dir, err := setUpHugePages()
		check(err)
		*flagDir = dir
	}
	if *flagSizes != "" {
		sizes, err := parseSizes(*flagSizes)
		check(err)
		fmt.Printf("# tablecompare: the size series, keys of %d bytes, values of %d bytes, %d ops per cell in %d turns, median of %d\n",
			*flagKey, *flagValue, *flagOps, *flagSlices, *flagRounds)
		fmt.Printf("# %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
		sizeSeries(sizes)
		return
	}
	fmt.Printf("# tablecompare: %d keys of %d bytes, values of %d bytes, %d ops per cell in %d turns, median of %d\n",
		*flagKeys, *flagKey, *flagValue, *flagOps, *flagSlices, *flagRounds)
	fmt.Printf("# %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if *flagScattered {
		fmt.Print("# keys: each from its own allocation (-scattered-keys)\n\n")
	} else {
		fmt.Print("# keys: built in a buffer for each operation\n\n")
	}

	keys := make([][]byte, *flagKeys)
	for i := range keys {
		keys[i] = key(i)
	}
	kr := newKeyer(keys)
	for i, k := range keys {
		if !bytes.Equal(kr.key(i), k) {
			check(fmt.Errorf("the key builder made %q for key %d, want %q", kr.key(i), i, k))
		}
	}
	value := make([]byte, *flagValue)
	for i := range value {
		value[i] = byte(i)
	}
	path := fmt.Sprintf("%s/tablecompare-%d.table", *flagDir, os.Getpid())
	tbl := open(sessioncache.Config{Path: path, ElementCount: *flagKeys * 5 / 4, RecordSize: *flagKey + *flagValue})
	defer tbl.Remove()
	defer tbl.Close()
	bytesNeeded := *flagKeys * (*flagKey + *flagValue + 64)
	caches := []struct {
		name string
		kv   kv
	}{
		{"sessioncache", gsTable{tbl}},
		{"fastcache", fastCache{fastcache.New(2 * bytesNeeded)}},
		{"freecache", freeCache{freecache.NewCache(2 * bytesNeeded)}},
	}
	for _, c := range caches {
		fill(c.kv, keys, value)
		if readable(c.kv, keys) != len(keys) {
			fmt.Fprintf(os.Stderr, "%s lost a key while filling: size it larger\n", c.name)
			exit(1)
		}
	}
	fmt.Printf("# pages: %s\n\n", pageReport(tbl))

	if *flagOnly == "processes" {
		twoProcesses(path)
		return
	}

	uniform := indexes(*flagKeys, 1)
	hot := indexes(1000, 2)
	type workload struct {
		name       string
		write      bool
		idx        []int
		goroutines int
	}
	workloads := []workload{
		{"get uniform", false, uniform, 1}, {"get uniform", false, uniform, 2},
		{"get hot-1000", false, hot, 1}, {"get hot-1000", false, hot, 2},
		{"set uniform", true, uniform, 1}, {"set uniform", true, uniform, 2},
		{"set hot-1000", true, hot, 1}, {"set hot-1000", true, hot, 2},
	}
	fmt.Println("| workload | goroutines | sessioncache ns/op | fastcache ns/op | freecache ns/op | vs fastcache | vs freecache |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, w := range workloads {
		if !strings.Contains(w.name, *flagOnly) {
			continue
		}
		kvs := make([]kv, len(caches))
		for i, c := range caches {
			kvs[i] = c.kv
		}
		samples := make([][]float64, len(caches))
		for range *flagRounds {
			for i, ns := range measure(kvs, keys, value, w.idx, w.write, w.goroutines) {
				samples[i] = append(samples[i], ns)
			}
		}
		var ns [3]float64
		for i := range caches {
			ns[i] = median(samples[i])
		}
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.2fx | %.2fx |\n",
			w.name, w.goroutines, ns[0], ns[1], ns[2], ns[0]/ns[1], ns[0]/ns[2])
	}
	fmt.Println()

	// Retention: after all those Sets of keys that fit, how many does each cache still hold?
	fmt.Println("| after the set workloads | sessioncache | fastcache | freecache |")
	fmt.Println("|---|---|---|---|")
	fmt.Print("| keys still readable |")
	for _, c := range caches {
		fmt.Printf(" %d of %d |", readable(c.kv, keys), len(keys))
	}
	fmt.Print("\n\n")

	if *flagOnly != "" {
		return
	}
	twoProcesses(path)
	recovery()
	memory()
}

// indexes returns a fixed pseudo-random sequence of key indexes below n.
func indexes(n int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, seed))
	idx := make([]int, 1<<20)
	for i := range idx {
		idx[i] = rng.IntN(n)
	}
	return idx
}

// measure makes one measurement of a cell on each cache (skipping nil ones): *flagOps
// operations each, cut into *flagSlices parts that the caches take turns at, so that noise
// from the shared machine, which comes and goes within seconds, falls on all of them alike.
// It returns each cache's wall ns per operation.
func measure(caches []kv, keys [][]byte, value []byte, idx []int, write bool, goroutines int) []float64 {
	slices := max(*flagSlices, 1)
	per := *flagOps / slices
	ns := make([]float64, len(caches))
	for s := range slices {
		for j, c := range caches {
			if c != nil {
				ns[j] += run(c, keys, value, idx, write, goroutines, per, s*per) / float64(slices)
			}
		}
	}
	return ns
}

// run performs ops operations split over goroutines, from position from of the index
// sequence on, and returns wall ns per operation.
func run(c kv, keys [][]byte, value []byte, idx []int, write bool, goroutines, ops, from int) float64 {
	per := ops / goroutines
	var wg sync.WaitGroup
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			buf := make([]byte, 0, len(value))
			kr := newKeyer(keys)
			// Each goroutine starts its own part of the sequence, far enough from the others'
			// that none catches up with another's within a measurement: two goroutines that
			// drift onto the same keys in the same order contend for every key's lock and
			// measure the convoy, not the cache (two goroutines twice through one sequence,
			// the second 7919 operations ahead, waited for one table lock in three; with
			// sequences of their own, one in 800).
			off := from + g*len(idx)/goroutines
			for i := range per {
				k := kr.key(idx[(off+i)&(len(idx)-1)])
				if write {
					c.set(k, value)
				} else {
					c.get(buf[:0], k)
				}
			}
		})
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(per*goroutines)
}

func median(s []float64) float64 {
	sort.Float64s(s)
	return s[len(s)/2]
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		exit(1)
	}
}

// created lists the section files this process made; exit removes them, so that a run that
// fails or is interrupted does not leave tables in shared memory.
var created sync.Map

// open creates a table for this run and remembers its file for exit.
func open(cfg sessioncache.Config) *sessioncache.Table {
	cfg.Create, cfg.Replace = true, true
	t, err := sessioncache.Open(cfg)
	check(err)
	created.Store(cfg.Path, true)
	return t
}

// exit removes the tables this process created and exits with code.
func exit(code int) {
	created.Range(func(path, _ any) bool {
		os.Remove(path.(string))
		return true
	})
	undoPages()
	os.Exit(code)
}

// exitOnSignal makes SIGINT and SIGTERM go through exit.
func exitOnSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-c
		exit(1)
	}()
}
