package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// child runs in a separate process on the table at path.
//
//	get:    uniform Gets; prints "ready", waits for a line on stdin, runs for -process-time,
//	        prints how many Gets it made and in how many ns.
//	writer: prints "ready", then Sets in a tight loop until killed, printing "busy" once.
func child(role, path string) int {
	runtime.GOMAXPROCS(1)
	t, err := sessioncache.Open(sessioncache.Config{Path: path})
	check(err)
	defer t.Close()
	keys := make([][]byte, *flagKeys)
	for i := range keys {
		keys[i] = key(i)
	}
	switch role {
	case "get":
		idx := indexes(*flagKeys, uint64(os.Getpid()))
		buf := make([]byte, 0, t.RecordSize())
		// Read every key once first: a process's first touch of each page of the section
		// is a page fault, which a running server has long paid, so it stays out of the
		// measurement.
		for _, k := range keys {
			_, _, _ = t.GetAppend(buf[:0], k)
		}
		kr := newKeyer(keys)
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
		start := time.Now()
		ops := 0
		for time.Since(start) < *flagProcessTime {
			for range 4096 {
				if _, _, err := t.GetAppend(buf[:0], kr.key(idx[ops&(len(idx)-1)])); err != nil {
					check(err)
				}
				ops++
			}
		}
		fmt.Println(ops, time.Since(start).Nanoseconds())
		return 0
	case "writer":
		v := make([]byte, 100)
		fmt.Println("ready")
		for i := 0; ; i++ {
			if i == 20000 {
				fmt.Println("busy")
			}
			check(t.Set(keys[i%len(keys)], v, time.Time{}))
		}
	}
	return 2
}

type proc struct {
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Reader
}

func spawn(role, path string, extra ...string) *proc {
	r, w, err := os.Pipe()
	check(err)
	args := append([]string{"-child", role, "-path", path,
		"-keys", strconv.Itoa(*flagKeys), "-key-size", strconv.Itoa(*flagKey),
		"-ops", strconv.Itoa(*flagOps), "-process-time", flagProcessTime.String(),
		"-scattered-keys=" + strconv.FormatBool(*flagScattered)}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	r.Close()
	p := &proc{cmd: cmd, in: w, out: bufio.NewReader(out)}
	p.expect("ready")
	return p
}

func (p *proc) expect(want string) {
	line, err := p.out.ReadString('\n')
	check(err)
	if strings.TrimSpace(line) != want {
		check(fmt.Errorf("child said %q, want %q", line, want))
	}
}

// twoProcesses compares the Get throughput of one process alone with two processes on the
// same table at once, each with one OS thread. Each process makes Gets for the same length of
// time, started together; the throughput of several is the sum of their rates.
func twoProcesses(path string) {
	o, t := processRates(path)
	fmt.Println("| processes on one table (uniform get) | ops/s | ratio to one process |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| 1 | %.0f | 1.00x |\n| 2 | %.0f | %.2fx |\n\n", o, t, t/o)
}

// processRates returns the medians over rounds of the Get rates of one process and of two
// processes on the table at path.
func processRates(path string) (one, two float64) {
	measure := func(n int) float64 {
		var ps []*proc
		for range n {
			ps = append(ps, spawn("get", path))
		}
		for _, p := range ps {
			fmt.Fprintln(p.in, "go")
		}
		var total float64
		for _, p := range ps {
			line, err := p.out.ReadString('\n')
			check(err)
			var ops, ns float64
			_, err = fmt.Sscan(line, &ops, &ns)
			check(err)
			total += ops / (ns / 1e9)
			check(p.cmd.Wait())
		}
		return total
	}
	var ones, twos []float64
	for range *flagRounds {
		ones = append(ones, measure(1))
		twos = append(twos, measure(2))
	}
	return median(ones), median(twos)
}

// recovery kills a process that writes to a one-shard table in a tight loop (so it holds the
// shard lock most of the time) and times how long this process's next Set takes. Kills that
// caught the writer holding the lock are the ones reported.
func recovery() {
	path := fmt.Sprintf("%s/tablecompare-recovery-%d.table", *flagDir, os.Getpid())
	t := open(sessioncache.Config{Path: path, ElementCount: 1024, RecordSize: 256, Shards: 1})
	defer t.Remove()
	defer t.Close()
	var waits []time.Duration
	for range *flagKills {
		before := t.Stats().Recoveries
		p := spawn("writer", path)
		p.expect("busy")
		check(p.cmd.Process.Signal(syscall.SIGKILL))
		start := time.Now()
		check(t.Set([]byte("after-kill"), []byte("v"), time.Time{}))
		took := time.Since(start)
		p.cmd.Wait()
		if t.Stats().Recoveries > before {
			waits = append(waits, took)
		}
	}
	check(t.Verify())
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	fmt.Println("| SIGKILL of a lock holder | kills that held the lock | median wait | max wait |")
	fmt.Println("|---|---|---|---|")
	if len(waits) == 0 {
		fmt.Printf("| %d kills | 0 | - | - |\n\n", *flagKills)
		return
	}
	fmt.Printf("| %d kills | %d | %v | %v |\n\n", *flagKills, len(waits),
		waits[len(waits)/2].Round(10*time.Microsecond), waits[len(waits)-1].Round(10*time.Microsecond))
}

// memory shows that the table's entries live in the section, not on the Go heap.
func memory() {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	fmt.Println("| table entries | Go heap growth | section bytes | per record beyond record_size |")
	fmt.Println("|---|---|---|---|")
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		path := fmt.Sprintf("%s/tablecompare-mem-%d.table", *flagDir, os.Getpid())
		rs := *flagKey + *flagValue
		k := make([]byte, *flagKey)
		v := make([]byte, *flagValue)
		before := heap()
		t := open(sessioncache.Config{Path: path, ElementCount: n * 5 / 4, RecordSize: rs})
		for i := range n {
			copy(k, fmt.Appendf(k[:0], "%0*d", *flagKey, i))
			check(t.Set(k, v, time.Time{}))
		}
		growth := int64(heap()) - int64(before)
		size := t.SectionSize()
		per := float64(size)/float64(t.Capacity()) - float64(rs)
		fmt.Printf("| %d | %d B | %d | %.1f B |\n", n, growth, size, per)
		t.Remove()
		t.Close()
	}
	fmt.Println()
}
