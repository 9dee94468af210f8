// Command relaycompare measures, in one run on loopback, remote GET and SET through the
// project's relay (relay.Client to a relay.Relay, over plain TCP and over TLS) against a real
// redis-server, with a raw Go TCP round trip of the same bytes as the floor. Redis is driven
// twice: through github.com/redis/go-redis/v9 (one command per pooled connection at a time)
// and through github.com/redis/rueidis with auto-pipelining, which pipelines the commands of
// concurrent goroutines on its connections as relay.Client does its requests: the fair
// comparison (every rueidis connection has overlapped commands before it is measured, so
// that it runs them through its reader and writer goroutines, as a relay.Client always
// does; a fresh one runs commands on the caller's goroutine until two overlap). Every
// figure is also stated as a ratio to a baseline measured in the same run,
// each server's CPU time per operation is read from /proc (so the ratio does not depend on
// the load generator), and redis-benchmark's figures stand beside them as the ceiling of a
// C client.
//
// Each server runs in its own process: the relays and the raw echo server are this program
// re-executed with a hidden flag (-serve-relay, -serve-echo), redis-server is started from
// PATH on a free port without persistence. The workload is uniform random GETs and SETs of
// preloaded keys; the matrix is {relay, relay TLS, redis, redis pipelined} x {GET, SET} x
// {1, 4 connections} x {1, 16 requests in flight}, each cell a fixed number of operations
// after a warm-up, repeated in rounds that interleave the systems so that noise hits them
// all; the median is reported. Latency is that of every GET with 1 connection and 1 request
// in flight. A cell runs -ops operations (200,000), or fewer when its slowest system would
// need more than -budget (2s) for them; the count is fixed in the first round and the same
// for every system. After the matrix that latency is measured again with this process and
// every server on one processor (-one-processor, on by default): on a machine whose idle
// processors halt, a round trip otherwise waits for the other end's processor to be woken,
// which is the machine's slow wake-up state; on one processor it never does, which is its
// fast one. The report states the single-client target in both.
//
// Run it from the bench directory (redis-server and redis-benchmark must be installed, e.g.
// with `apt-get install -y redis-server`); the markdown report goes to stdout, progress to
// stderr:
//
//	go run ./relaycompare
//	go run ./relaycompare -ops 50000 -rounds 1     (a quick look)
//	go run ./relaycompare -conns 1 -inflight 16    (only the cells of one connection, 16 in flight)
//	go run ./relaycompare -steady                  (single-client latency, one system at a time; see steady.go)
//	go run ./relaycompare -fast-wakeup             (idle processors kept polling, where a cpuidle driver allows it)
//	go run ./relaycompare -one-processor=false     (without the one-processor latency)
//
// Beside each server's CPU time per operation it reports this process's, the clients'
// side, so that a gap between the systems can be placed on the server or the client.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/bench/internal/benchpki"
	"github.com/globalsession/globalsession/bench/internal/proccpu"
	"github.com/globalsession/globalsession/bench/internal/procs"
	"github.com/globalsession/globalsession/bench/internal/wakeup"
	"github.com/globalsession/globalsession/internal/wire"
)

var (
	flagKeys      = flag.Int("keys", 10_000, "distinct keys, preloaded in every server")
	flagKeySize   = flag.Int("key-size", 32, "key bytes")
	flagValueSize = flag.Int("value-size", 384, "value bytes")
	flagOps       = flag.Int("ops", 200_000, "operations per measurement, after a warm-up (see -budget)")
	flagRounds    = flag.Int("rounds", 3, "rounds; the median over rounds is reported")
	flagConns     = flag.String("conns", "1,4", "connection counts to measure, comma-separated")
	flagFast      = flag.Bool("fast-wakeup", false, "keep idle processors polling during the run (/dev/cpu_dma_latency 0, root): "+
		"the machine's fast wake-up state on demand; refused where the kernel has no cpuidle driver, which ignores the request")
	flagOneProcessor = flag.Bool("one-processor", true, "also measure the single-client GET latency with every process on one processor: "+
		"the wake-up state in which no halted processor has to be woken (see bench/internal/wakeup.OneProcessor)")
	flagSteady       = flag.Bool("steady", false, "measure single-client GET latency one system at a time instead of the matrix (see steady.go)")
	flagSteadyRounds = flag.Int("steady-rounds", 8, "rounds per system with -steady")
	flagSteadyOps    = flag.Int("steady-ops", 10_000, "sequential GETs per round with -steady")
	flagInflight     = flag.String("inflight", "1,16", "requests in flight per cell, comma-separated")
	flagBudget       = flag.Duration("budget", 2*time.Second, "time budget of one measurement: a cell whose slowest "+
		"system would need longer for -ops operations runs fewer, the same count for every system and round (0: no limit)")

	// Hidden: the roles of the re-executed child processes.
	flagServeRelay = flag.Bool("serve-relay", false, "internal: serve a relay, print its address, stop when stdin closes")
	flagServeEcho  = flag.Bool("serve-echo", false, "internal: serve the raw TCP echo, print its address, stop when stdin closes")
	flagTLSCert    = flag.String("tls-cert", "", "internal: server certificate for -serve-relay")
	flagTLSKey     = flag.String("tls-key", "", "internal: server key for -serve-relay")
)

func main() {
	flag.Parse()
	switch {
	case *flagServeRelay:
		exitOn(serveRelay(*flagTLSCert, *flagTLSKey))
		return
	case *flagServeEcho:
		exitOn(serveEcho())
		return
	}
	var err error
	if connCounts, err = intList(*flagConns); err == nil {
		inflightSizes, err = intList(*flagInflight)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaycompare:", err)
		os.Exit(2)
	}
	if *flagKeys < 1 || *flagOps < 16 || *flagRounds < 1 || *flagKeySize < 1 || *flagValueSize < 1 {
		fmt.Fprintln(os.Stderr, "relaycompare: -keys, -key-size, -value-size and -rounds must be positive, -ops at least 16")
		os.Exit(2)
	}
	// A closed stdout (say, piped into head) must not kill the program before it stops the
	// servers: writes then fail with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	procs.ExitOnSignal(130, func(s os.Signal) {
		fmt.Fprintf(os.Stderr, "relaycompare: %v, stopping the servers\n", s)
	})
	release := func() {}
	if *flagFast {
		if release, err = wakeup.HoldFast(); err != nil {
			fmt.Fprintln(os.Stderr, "relaycompare:", err)
			os.Exit(1)
		}
	}
	err = compare()
	release()
	procs.RunCleanups()
	exitOn(err)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaycompare:", err)
		os.Exit(1)
	}
}

// The systems measured, in the order of the report's columns.
const (
	sysRelay    = "relay"
	sysRelayTLS = "relay TLS"
	sysRedis    = "redis"
	sysRedisP   = "redis pipelined"
	sysRaw      = "raw TCP"
)

type cell struct {
	op              opKind
	conns, inflight int
}

var (
	connCounts    = []int{1, 4}
	inflightSizes = []int{1, 16}
	opKinds       = []opKind{opGet, opSet}
)

// measurements holds every round's throughput per cell and system, and the pooled GET
// latencies with 1 connection and 1 request in flight per system.
type measurements struct {
	tput  map[cell]map[string][]float64
	cpu   map[cell]map[string][]float64 // the server process's CPU time per operation, µs
	self  map[cell]map[string][]float64 // this process's (the clients') CPU time per operation, µs
	bench map[cell]float64              // redis-benchmark's ops/s
	ops   map[cell]int                  // operations per measurement, fixed in the first round
	lat   map[string][]time.Duration
	// latOne is lat measured with every process on processor oneCPU (-one-processor).
	latOne map[string][]time.Duration
	oneCPU int
	redis  string // redis-server version
}

func compare() error {
	tmp, err := os.MkdirTemp("", "relaycompare-")
	if err != nil {
		return err
	}
	procs.AtCleanup(func() { os.RemoveAll(tmp) })
	p, err := benchpki.New(tmp)
	if err != nil {
		return err
	}
	w := newWorkload(*flagKeys, *flagKeySize, *flagValueSize)
	f, err := startFleet(tmp, p, w)
	if err != nil {
		return err
	}
	if *flagSteady {
		return steady(f.dial, w)
	}
	m := &measurements{tput: map[cell]map[string][]float64{}, cpu: map[cell]map[string][]float64{},
		self: map[cell]map[string][]float64{}, bench: map[cell]float64{},
		ops: map[cell]int{}, lat: map[string][]time.Duration{}, latOne: map[string][]time.Duration{}, redis: f.redis.version}
	start := time.Now()
	for round := range *flagRounds {
		for _, conns := range connCounts {
			if err := measureRound(m, f.dial, f.pids, w, round, conns); err != nil {
				return err
			}
		}
	}
	if *flagOneProcessor && slices.Contains(connCounts, 1) && slices.Contains(inflightSizes, 1) {
		if err := measureOneProcessor(m, tmp, p, w); err != nil {
			return err
		}
	}
	progress("measured in %v", time.Since(start).Round(time.Second))
	if err := redisBenchmark(m, f.redis.addr); err != nil {
		progress("redis-benchmark: %v (its column stays empty)", err)
	}
	report(os.Stdout, m, reqSize(), replySize())
	return nil
}

// A relay GET is a 4-byte length, a header, the path and the key; its answer a length, a
// header and the value. The raw floor moves exactly as many bytes.
func reqSize() int   { return 4 + wire.HeaderSize + len("auths") + *flagKeySize }
func replySize() int { return 4 + wire.HeaderSize + *flagValueSize }

// fleet is one set of the servers measured, each in a process of its own, preloaded.
type fleet struct {
	redis               *redisServer
	plain, secure, echo *child
	dial                map[string]func(conns int) (session, error)
	pids                map[string]int // each system's server process
}

// startFleet starts redis-server, a plain and a TLS relay and the raw echo (each stopped at
// the end of the run, or earlier by stop) and preloads the keys of w into Redis and the
// relays.
func startFleet(tmp string, p *benchpki.PKI, w *workload) (*fleet, error) {
	dir, err := os.MkdirTemp(tmp, "redis-")
	if err != nil {
		return nil, err
	}
	f := &fleet{}
	if f.redis, err = startRedis(dir); err != nil {
		return nil, err
	}
	procs.AtCleanup(f.redis.stop)
	sizes := []string{"-keys", strconv.Itoa(*flagKeys), "-key-size", strconv.Itoa(*flagKeySize),
		"-value-size", strconv.Itoa(*flagValueSize)}
	if f.plain, err = startChild("relay", append([]string{"-serve-relay"}, sizes...)...); err != nil {
		return nil, err
	}
	procs.AtCleanup(f.plain.stop)
	if f.secure, err = startChild("relay TLS", append([]string{"-serve-relay", "-tls-cert", p.CertFile, "-tls-key", p.KeyFile}, sizes...)...); err != nil {
		return nil, err
	}
	procs.AtCleanup(f.secure.stop)
	if f.echo, err = startChild("echo", "-serve-echo"); err != nil {
		return nil, err
	}
	procs.AtCleanup(f.echo.stop)

	progress("preloading %d keys", len(w.keys))
	if err := preloadRelay(w, f.plain.addr, nil); err != nil {
		return nil, fmt.Errorf("preload relay: %w", err)
	}
	if err := preloadRelay(w, f.secure.addr, p.ClientTLS()); err != nil {
		return nil, fmt.Errorf("preload relay TLS: %w", err)
	}
	if err := preloadRedis(w, f.redis.addr); err != nil {
		return nil, fmt.Errorf("preload redis: %w", err)
	}
	f.dial = map[string]func(conns int) (session, error){
		sysRelay:       func(n int) (session, error) { return dialRelay(w, f.plain.addr, nil, n) },
		sysRelayTLS:    func(n int) (session, error) { return dialRelay(w, f.secure.addr, p.ClientTLS(), n) },
		sysRedis:       func(n int) (session, error) { return dialRedis(w, f.redis.addr, n) },
		sysRedisP:      func(n int) (session, error) { return dialPipelinedRedis(w, f.redis.addr, n) },
		sysRaw:         func(int) (session, error) { return dialRaw(f.echo.addr, reqSize(), replySize()) },
		sysRelayFrames: func(int) (session, error) { return dialFrames(w, f.plain.addr) },
	}
	f.pids = map[string]int{sysRelay: f.plain.cmd.Process.Pid, sysRelayTLS: f.secure.cmd.Process.Pid,
		sysRedis: f.redis.cmd.Process.Pid, sysRedisP: f.redis.cmd.Process.Pid, sysRaw: f.echo.cmd.Process.Pid}
	return f, nil
}

// stop stops the fleet's servers.
func (f *fleet) stop() {
	f.plain.stop()
	f.secure.stop()
	f.echo.stop()
	f.redis.stop()
}

// measureRound measures every cell with conns connections once, the systems interleaved
// in an order that rotates with the round.
func measureRound(m *measurements, dial map[string]func(int) (session, error), pids map[string]int, w *workload, round, conns int) error {
	names := []string{sysRelay, sysRelayTLS, sysRedis, sysRedisP}
	if conns == 1 {
		names = append(names, sysRaw)
	}
	sessions := map[string]session{}
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	for _, n := range names {
		s, err := dial[n](conns)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", n, err)
		}
		sessions[n] = s
	}
	for oi, op := range opKinds {
		for ii, inflight := range inflightSizes {
			c := cell{op, conns, inflight}
			latCell := op == opGet && inflight == 1 && conns == 1
			order := make([]string, 0, len(names))
			for i := range names {
				n := names[(i+round)%len(names)]
				if n != sysRaw || latCell {
					order = append(order, n)
				}
			}
			seed := uint64(round*100 + conns*10 + oi*2 + ii)
			rates := map[string]float64{}
			for _, n := range order {
				rate, err := warmUp(sessions[n], op, inflight, max(*flagOps/20, 1000), len(w.keys), *flagBudget/10, seed^0x5eed)
				if err != nil {
					return fmt.Errorf("%s %s conns=%d in-flight=%d: %w", n, op, conns, inflight, err)
				}
				rates[n] = rate
			}
			count := m.ops[c]
			if count == 0 { // first round: size the cell by its slowest system
				count = cellOps(slices.Min(slices.Collect(maps.Values(rates))))
				m.ops[c] = count
			}
			for _, n := range order {
				cpu0, self0 := proccpu.Threads(pids[n]), proccpu.Threads(os.Getpid())
				res, err := measure(sessions[n], op, inflight, count, len(w.keys), seed)
				if err != nil {
					return fmt.Errorf("%s %s conns=%d in-flight=%d: %w", n, op, conns, inflight, err)
				}
				cpu := float64(proccpu.Threads(pids[n])-cpu0) / float64(time.Microsecond) / float64(count)
				self := float64(proccpu.Threads(os.Getpid())-self0) / float64(time.Microsecond) / float64(count)
				progress("round %d/%d: %s conns=%d in-flight=%-2d %-15s %7.0f ops/s, median %v, server CPU %.1f µs/op, client CPU %.1f µs/op (%d ops)",
					round+1, *flagRounds, op, conns, inflight, n, res.opsPerSec,
					percentile(slices.Clone(res.lat), 0.5).Round(100*time.Nanosecond), cpu, self, count)
				if m.tput[c] == nil {
					m.tput[c] = map[string][]float64{}
					m.cpu[c] = map[string][]float64{}
					m.self[c] = map[string][]float64{}
				}
				m.tput[c][n] = append(m.tput[c][n], res.opsPerSec)
				m.cpu[c][n] = append(m.cpu[c][n], cpu)
				m.self[c][n] = append(m.self[c][n], self)
				if latCell {
					m.lat[n] = append(m.lat[n], res.lat...)
				}
			}
		}
	}
	return nil
}

// measureOneProcessor measures the single-client GET latency of every system again, -rounds
// times in turns as the matrix does, on one processor: the machine's other wake-up state,
// in which the thread that sends runs on the processor of the thread it wakes, so no
// processor has to come out of halt for a round trip. This process moves to one processor
// and starts a fleet of servers there (they inherit the processor, and their Go runtimes
// take one logical processor from the start), which it stops after.
func measureOneProcessor(m *measurements, tmp string, p *benchpki.PKI, w *workload) error {
	cpu, release, err := wakeup.OneProcessor()
	if err != nil {
		return err
	}
	m.oneCPU = cpu
	defer func() {
		if err := release(); err != nil {
			progress("one processor: giving this process its processors back: %v", err)
		}
	}()
	f, err := startFleet(tmp, p, w)
	if err != nil {
		return err
	}
	defer f.stop()
	names := []string{sysRelay, sysRelayTLS, sysRedis, sysRedisP, sysRaw}
	sessions := map[string]session{}
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	for _, n := range names {
		s, err := f.dial[n](1)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", n, err)
		}
		sessions[n] = s
	}
	count := m.ops[cell{opGet, 1, 1}]
	for round := range *flagRounds {
		for i := range names {
			n := names[(i+round)%len(names)]
			seed := uint64(1000 + round)
			if _, err := warmUp(sessions[n], opGet, 1, max(count/20, 1000), len(w.keys), *flagBudget/10, seed^0x5eed); err != nil {
				return fmt.Errorf("%s on one processor: %w", n, err)
			}
			res, err := measure(sessions[n], opGet, 1, count, len(w.keys), seed)
			if err != nil {
				return fmt.Errorf("%s on one processor: %w", n, err)
			}
			progress("round %d/%d: GET conns=1 in-flight=1  %-15s on processor %d: median %v (%d ops)", round+1, *flagRounds, n,
				cpu, percentile(slices.Clone(res.lat), 0.5).Round(100*time.Nanosecond), count)
			m.latOne[n] = append(m.latOne[n], res.lat...)
		}
	}
	return nil
}

// cellOps is -ops, or fewer when the slowest system, at rate ops/s, would need more than
// -budget for them (rounded down to a thousand, at least a thousand).
func cellOps(rate float64) int {
	n := *flagOps
	if *flagBudget > 0 {
		n = min(n, max(int(rate*flagBudget.Seconds())/1000*1000, 1000))
	}
	return n
}

// intList parses a comma-separated list of positive integers.
func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a list of positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "relaycompare: "+format+"\n", args...)
}

func machine() string {
	state := "idle processors as the machine handles them"
	if *flagFast {
		state = "idle processors kept polling (-fast-wakeup)"
	}
	return fmt.Sprintf("%d CPUs, %s/%s, %s; %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), state)
}
