// Command tiercompare measures the session tier with pressure relief, on loopback, each
// server in its own process:
//
//   - the single-client median latency of a Get for an entry that only aging relief holds
//     (front end -> relay -> sibling -> aging relief -> back), against one raw TCP round
//     trip of the same sizes measured in the same run;
//
//   - the tier's Set (publish) throughput with an expansion and an aging relief server
//     attached, against the same tier without relief.
//
//     cd bench && go run ./tiercompare
//     cd bench && go run ./tiercompare -fast-wakeup   (idle processors kept polling, where a cpuidle driver allows it)
//
// The Get latencies are measured in both of the machine's wake-up states: with threads
// placed as the machine places them (on a machine whose idle processors halt, a round trip
// then waits for the other end's processor to be woken), and with every process on one
// processor (-one-processor, on by default), where no round trip does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/globalsession/globalsession/bench/internal/proccpu"
	"github.com/globalsession/globalsession/bench/internal/wakeup"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

var (
	flagKeys   = flag.Int("keys", 20000, "entries published before the fall-through measurement")
	flagSets   = flag.Int("sets", 100000, "publishes per throughput measurement")
	flagRounds = flag.Int("rounds", 5, "rounds, interleaving with and without relief; medians are reported")
	flagChild  = flag.String("child", "", "internal: run as a server process (tier or echo)")
	flagExp    = flag.Int("expansion", 0, "internal: expansion relief servers in a tier child")
	flagAging  = flag.Int("aging", 0, "internal: aging relief servers in a tier child")
	flagProcs  = flag.Int("tier-procs", 0, "GOMAXPROCS of the tier processes (0: the runtime's default, every processor); "+
		"1 runs each tier on one processor at a time, the load generator keeping every processor")
	flagOne = flag.Bool("one-processor", true, "also measure the Get latencies with every process on one processor: the wake-up state "+
		"in which no halted processor has to be woken (see bench/internal/wakeup.OneProcessor)")
	flagFast = flag.Bool("fast-wakeup", false, "keep idle processors polling during the run (/dev/cpu_dma_latency 0, root): "+
		"the machine's fast wake-up state on demand; refused where the kernel has no cpuidle driver, which ignores the request")
)

const (
	keySize   = 32
	valueSize = 384
	relayRecs = 64 // the relay's table is tiny, so nearly every entry is pushed down
)

func main() {
	flag.Parse()
	if *flagChild != "" {
		if err := serve(*flagChild); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tiercompare:", err)
		os.Exit(1)
	}
}

func key(i int) []byte { return fmt.Appendf(nil, "%0*d", keySize, i) }

func run() error {
	state := "idle processors as the machine handles them"
	if *flagFast {
		release, err := wakeup.HoldFast()
		if err != nil {
			return err
		}
		defer release()
		state = "idle processors kept polling (-fast-wakeup)"
	}
	procs := "every processor"
	if *flagProcs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS=%d (-tier-procs)", *flagProcs)
	}
	fmt.Printf("# the tier with pressure relief, on loopback\n\n%d-byte keys, %d-byte values; relay table of %d records; "+
		"the load generator (this process), the raw TCP echo and each tier in a process of its own, a tier's relay, "+
		"sibling and relief servers in one process using %s. Machine: %d CPUs, %s/%s, %s; %s.\n\n",
		keySize, valueSize, relayRecs, procs, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), state)
	ctx := context.Background()

	echo, err := spawn("echo")
	if err != nil {
		return err
	}
	defer echo.stop()
	agingTier, err := spawn("tier", "-aging", "1")
	if err != nil {
		return err
	}
	defer agingTier.stop()
	fall, hit, err := fallThrough(ctx, agingTier.addr)
	if err != nil {
		return err
	}
	raw, err := rawRoundTrips(echo.addr, len(fall))
	if err != nil {
		return err
	}
	var one latencies
	oneCPU := -1
	if *flagOne {
		if one, oneCPU, err = latenciesOnOneProcessor(ctx); err != nil {
			return err
		}
	}
	fmt.Println("## Get latency, 1 client, 1 request in flight")
	fmt.Println()
	if oneCPU >= 0 {
		fmt.Println("| path | median | p99 | median / raw round trip | on one processor: median | p99 | median / raw round trip |")
		fmt.Println("|---|--:|--:|--:|--:|--:|--:|")
	} else {
		fmt.Println("| path | median | p99 | median / raw round trip |")
		fmt.Println("|---|--:|--:|--:|")
	}
	rawMed, oneRawMed := pct(raw, 50), pct(one.raw, 50)
	for _, row := range []struct {
		name   string
		d, one []time.Duration
	}{{"raw TCP round trip", raw, one.raw}, {"relay table hit", hit, one.hit}, {"fall-through to aging relief", fall, one.fall}} {
		fmt.Printf("| %s | %v | %v | %.2fx |", row.name, pct(row.d, 50).Round(100*time.Nanosecond),
			pct(row.d, 99).Round(100*time.Nanosecond), float64(pct(row.d, 50))/float64(rawMed))
		if oneCPU >= 0 {
			fmt.Printf(" %v | %v | %.2fx |", pct(row.one, 50).Round(100*time.Nanosecond),
				pct(row.one, 99).Round(100*time.Nanosecond), float64(pct(row.one, 50))/float64(oneRawMed))
		}
		fmt.Println()
	}
	fmt.Printf("\n%d fall-through samples: entries published, pushed out of the relay's table to the aging server, "+
		"then each read once.", len(fall))
	if oneCPU >= 0 {
		fmt.Printf(" On one processor: the same with this process, and an echo and a tier started for it, on processor %d "+
			"(-one-processor), every Go process running one logical processor, so that no round trip waits for a "+
			"halted processor to be woken: the wake-up state this machine cannot give otherwise (no cpuidle driver: "+
			"see bench/internal/wakeup). The other columns: threads placed as the machine places them.", oneCPU)
	}
	fmt.Printf("\n\n")

	with, err := spawn("tier", "-expansion", "1", "-aging", "1")
	if err != nil {
		return err
	}
	defer with.stop()
	without, err := spawn("tier")
	if err != nil {
		return err
	}
	defer without.stop()
	var w, wo, cw, cwo, gw, gwo []float64
	for range *flagRounds {
		a, err := setThroughput(ctx, with)
		if err != nil {
			return err
		}
		b, err := setThroughput(ctx, without)
		if err != nil {
			return err
		}
		w, wo = append(w, a.rate), append(wo, b.rate)
		cw, cwo = append(cw, a.tierCPU), append(cwo, b.tierCPU)
		gw, gwo = append(gw, a.loadCPU), append(gwo, b.loadCPU)
		fmt.Fprintf(os.Stderr, "tiercompare: round %d/%d: with relief %.0f publishes/s (tier CPU %.1f µs), without %.0f (%.1f µs): %.2fx\n",
			len(w), *flagRounds, a.rate, a.tierCPU, b.rate, b.tierCPU, a.rate/b.rate)
	}
	mw, mwo := median(w), median(wo)
	fmt.Println("## Set throughput, 1 connection, 16 publishes in flight")
	fmt.Println()
	fmt.Println("| tier | publishes/s | ratio to without relief | tier CPU per publish | ratio | load generator CPU per publish |")
	fmt.Println("|---|--:|--:|--:|--:|--:|")
	fmt.Printf("| without relief | %.0f | 1.00x | %.1f µs | 1.00x | %.1f µs |\n", mwo, median(cwo), median(gwo))
	fmt.Printf("| with expansion + aging relief | %.0f | %.2fx | %.1f µs | %.2fx | %.1f µs |\n\n", mw, mw/mwo, median(cw),
		median(cw)/median(cwo), median(gw))
	ratios := make([]string, len(w))
	for i := range w {
		ratios[i] = fmt.Sprintf("%.2fx", w[i]/wo[i])
	}
	fmt.Printf("Each round's ratio, in order: %s (the tables are prefaulted when created; the first round, the first to write each key into them, is still the slowest).\n\n",
		strings.Join(ratios, ", "))
	fmt.Println("Tier CPU per publish: the CPU time of the tier's process (relay, sibling, relief servers) from the first " +
		"publish until its hand-downs are done, divided by the publishes. Load generator CPU per publish: this process's " +
		"(the relay.Client and the 16 goroutines that publish) while it publishes; the two share the machine's processors.")
	fmt.Println()
	fmt.Printf("Targets: fall-through median <= 3x the raw round trip: %.2fx", float64(pct(fall, 50))/float64(rawMed))
	if oneCPU >= 0 {
		fmt.Printf(" (threads placed by the machine), %.2fx (on one processor)", float64(pct(one.fall, 50))/float64(oneRawMed))
	}
	fmt.Printf("; Set throughput with relief >= 0.8x without: %.2fx.\n", mw/mwo)
	return nil
}

// latencies are the samples of the Get latency measurement.
type latencies struct{ raw, hit, fall []time.Duration }

// latenciesOnOneProcessor measures the Get latencies again on one processor, with an echo
// and a tier started there for it, and returns them and the processor.
func latenciesOnOneProcessor(ctx context.Context) (latencies, int, error) {
	cpu, release, err := wakeup.OneProcessor()
	if err != nil {
		return latencies{}, 0, err
	}
	defer func() {
		if err := release(); err != nil {
			fmt.Fprintln(os.Stderr, "tiercompare: giving this process its processors back:", err)
		}
	}()
	// Started now, the servers inherit the processor, and their runtimes take one logical
	// processor from the start.
	echo, err := spawn("echo")
	if err != nil {
		return latencies{}, 0, err
	}
	defer echo.stop()
	tier, err := spawn("tier", "-aging", "1")
	if err != nil {
		return latencies{}, 0, err
	}
	defer tier.stop()
	var l latencies
	if l.fall, l.hit, err = fallThrough(ctx, tier.addr); err != nil {
		return latencies{}, 0, err
	}
	if l.raw, err = rawRoundTrips(echo.addr, len(l.fall)); err != nil {
		return latencies{}, 0, err
	}
	return l, cpu, nil
}

// fallThrough publishes *flagKeys entries, waits until the first has reached aging relief,
// and reads each once: all but the last relayRecs miss the relay's table. It returns the
// latencies of those fall-throughs and of table hits.
func fallThrough(ctx context.Context, addr string) (fall, hit []time.Duration, err error) {
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: addr})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	value := make([]byte, valueSize)
	if err := pipeline(16, *flagKeys, func(i int) error {
		return c.Publish(ctx, "auths", key(i), sessioncache.Entry{Value: value, Expiry: time.Now().Add(time.Hour)})
	}); err != nil {
		return nil, nil, err
	}
	// Evictions reach aging relief in the background: wait (bounded) for the last pushed out.
	last := key(*flagKeys - relayRecs - 1)
	for i := 0; ; i++ {
		if _, err := c.Get(ctx, "auths", last); err == nil {
			break
		} else if i == 1000 {
			return nil, nil, fmt.Errorf("entry never reached aging relief: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < *flagKeys-2*relayRecs; i++ {
		start := time.Now()
		if _, err := c.Get(ctx, "auths", key(i)); err != nil {
			return nil, nil, fmt.Errorf("get %d: %w", i, err)
		}
		fall = append(fall, time.Since(start))
	}
	for range len(fall) {
		start := time.Now()
		if _, err := c.Get(ctx, "auths", key(0)); err != nil {
			return nil, nil, err
		}
		hit = append(hit, time.Since(start))
	}
	return fall, hit, nil
}

// throughput is one measurement of setThroughput.
type throughput struct {
	rate    float64 // publishes per second
	tierCPU float64 // the tier process's CPU time per publish, µs, its hand-downs included
	loadCPU float64 // this process's CPU time per publish while publishing, µs
}

// setThroughput publishes *flagSets entries, 16 in flight on one connection, and returns
// the rate, the tier process's CPU time per publish (counted until the process stops
// using CPU after the last publish, so its hand-downs are included) and the load
// generator's.
func setThroughput(ctx context.Context, tier *child) (throughput, error) {
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: tier.addr})
	if err != nil {
		return throughput{}, err
	}
	defer c.Close()
	value := make([]byte, valueSize)
	pid := tier.cmd.Process.Pid
	cpu0, load0 := proccpu.Threads(pid), proccpu.Threads(os.Getpid())
	start := time.Now()
	err = pipeline(16, *flagSets, func(i int) error {
		return c.Publish(ctx, "auths", key(i%50000), sessioncache.Entry{Value: value, Expiry: time.Now().Add(time.Hour)})
	})
	rate := float64(*flagSets) / time.Since(start).Seconds()
	load := proccpu.Threads(os.Getpid()) - load0
	// Wait (bounded) until the tier is idle: two readings 50ms apart within 1ms of CPU.
	cpu := proccpu.Threads(pid)
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		next := proccpu.Threads(pid)
		if next-cpu < time.Millisecond {
			break
		}
		cpu = next
	}
	perPublish := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(*flagSets) }
	return throughput{rate: rate, tierCPU: perPublish(cpu - cpu0), loadCPU: perPublish(load)}, err
}

// pipeline runs fn(0..n-1) on `inFlight` goroutines.
func pipeline(inFlight, n int, fn func(int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for g := range inFlight {
		wg.Go(func() {
			for i := g; i < n; i += inFlight {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// pct returns the p-th percentile of d, 0 for none.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func median(f []float64) float64 {
	s := slices.Clone(f)
	slices.Sort(s)
	return s[len(s)/2]
}
