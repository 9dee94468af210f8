package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// report writes the markdown report of m.
func report(w io.Writer, m *measurements, reqSize, replySize int) {
	fmt.Fprintf(w, "# relay vs redis: remote GET and SET on loopback\n\n")
	fmt.Fprintf(w, "Workload: %s keys of %d B, values of %d B, uniform random keys; per cell up to %s operations (fewer "+
		"when the slowest system would need more than %v: see the ops column, the same for every system and round) "+
		"after a warm-up, median of %d rounds interleaving the systems. "+
		"Machine: %s. redis-server %s through go-redis %s; every server in its own "+
		"process on 127.0.0.1.\n\n",
		thousands(float64(*flagKeys)), *flagKeySize, *flagValueSize, thousands(float64(*flagOps)), *flagBudget, *flagRounds,
		machine(), m.redis, redis.Version())

	fmt.Fprintf(w, "## Throughput (ops/s)\n\n")
	fmt.Fprintf(w, "| op | conns | in flight | ops | relay | relay TLS | redis (go-redis) | redis pipelined (rueidis) | "+
		"relay / redis pipelined | TLS/plain | redis-benchmark | spread |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	eachCell(func(c cell) {
		t := m.tput[c]
		p, s, r, rp := median(t[sysRelay]), median(t[sysRelayTLS]), median(t[sysRedis]), median(t[sysRedisP])
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.op, c.conns, c.inflight,
			thousands(float64(m.ops[c])), thousands(p), thousands(s), thousands(r), thousands(rp), ratio(p, rp), ratio(s, p),
			thousands(m.bench[c]), spread(t[sysRelay], t[sysRelayTLS], t[sysRedis], t[sysRedisP]))
	})
	fmt.Fprintf(w, "\nspread: the largest (max-min)/median over the rounds among the systems of the row. redis-benchmark: "+
		"the C client shipped with Redis, with the cell's requests in flight spread over min(conns, in flight) "+
		"connections (-c, -P), run once after the rounds: the ceiling of a client.\n\n")

	cpuTable(w, "Server CPU per operation (µs)", "The CPU time of the server's process (every thread, from /proc) "+
		"during the measurement, divided by its operations: what a request costs the server, whatever the load "+
		"generator does.", "relay | relay TLS | redis (go-redis) | redis pipelined | relay / redis pipelined", m.cpu)
	cpuTable(w, "Client CPU per operation (µs)", "The CPU time of this process (the load generator: each system's "+
		"client library and the goroutines that drive it) during the measurement, divided by its operations.",
		"relay.Client | relay.Client TLS | go-redis | rueidis | relay.Client / rueidis", m.self)

	raw, rawOne := percentile(m.lat[sysRaw], 0.5), percentile(m.latOne[sysRaw], 0.5)
	if len(m.lat[sysRaw]) > 0 {
		fmt.Fprintf(w, "## GET latency, 1 connection, 1 request in flight\n\n")
		if len(m.latOne[sysRaw]) > 0 {
			fmt.Fprintf(w, "| path | median | p99 | median / raw round trip | on one processor: median | p99 | median / raw round trip |\n"+
				"|---|--:|--:|--:|--:|--:|--:|\n")
		} else {
			fmt.Fprintf(w, "| path | median | p99 | median / raw round trip |\n|---|--:|--:|--:|\n")
		}
		for _, n := range []string{sysRaw, sysRelay, sysRelayTLS, sysRedis, sysRedisP} {
			med, p99 := percentile(m.lat[n], 0.5), percentile(m.lat[n], 0.99)
			fmt.Fprintf(w, "| %s | %s | %s | %s |", n, micros(med), micros(p99), ratio(float64(med), float64(raw)))
			if len(m.latOne[sysRaw]) > 0 {
				med, p99 := percentile(m.latOne[n], 0.5), percentile(m.latOne[n], 0.99)
				fmt.Fprintf(w, " %s | %s | %s |", micros(med), micros(p99), ratio(float64(med), float64(rawOne)))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "\nraw TCP: a Go client writes a %d-byte request (the size of a relay GET) and reads a %d-byte "+
			"reply (the size of its answer) from a Go echo process that does nothing else; %s samples per path.",
			reqSize, replySize, thousands(float64(len(m.lat[sysRaw]))))
		if len(m.latOne[sysRaw]) > 0 {
			fmt.Fprintf(w, " On one processor: the same GETs, %d rounds in turns, after the matrix, with this process and "+
				"every server restricted to processor %d (-one-processor), so that no round trip waits for a halted "+
				"processor to be woken: the wake-up state this machine cannot give otherwise (no cpuidle driver: "+
				"see bench/internal/wakeup). The other columns are the matrix's, threads placed as the machine "+
				"places them.", *flagRounds, m.oneCPU)
		}
		fmt.Fprintf(w, "\n\n")
	}

	targets(w, m, raw, rawOne)

	fmt.Fprintf(w, "\nNotes: go-redis runs one command per pooled connection at a time (PoolSize = MaxActiveConns = "+
		"conns), so with more requests in flight than connections the others wait for the pool; a relay.Client "+
		"pipelines every request in flight on its connection, and so does rueidis (auto-pipelining, conns "+
		"connections, each put in its pipelined mode by overlapping GETs before it is measured): the fair "+
		"comparison is relay against redis pipelined. Goroutine g uses relay client g %% conns.\n")
}

// cpuTable writes a table of CPU time per operation, one row per cell, with the columns
// named in columns: relay, relay TLS, redis, redis pipelined and the ratio of the first to
// the last.
func cpuTable(w io.Writer, title, about, columns string, perOp map[cell]map[string][]float64) {
	fmt.Fprintf(w, "## %s\n\n%s\n\n", title, about)
	fmt.Fprintf(w, "| op | conns | in flight | %s |\n|---|--:|--:|--:|--:|--:|--:|--:|\n", columns)
	eachCell(func(c cell) {
		u := perOp[c]
		p, rp := median(u[sysRelay]), median(u[sysRedisP])
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %s |\n", c.op, c.conns, c.inflight,
			p, median(u[sysRelayTLS]), median(u[sysRedis]), rp, ratio(p, rp))
	})
	fmt.Fprintln(w)
}

// eachCell calls fn for every cell, in the report's order.
func eachCell(fn func(c cell)) {
	for _, op := range opKinds {
		for _, conns := range connCounts {
			for _, inflight := range inflightSizes {
				fn(cell{op, conns, inflight})
			}
		}
	}
}

// targets states each target and the cells that miss it; the single-client one in each
// wake-up state measured (rawOne is 0 when the one-processor state was not).
func targets(w io.Writer, m *measurements, raw, rawOne time.Duration) {
	fmt.Fprintf(w, "## Targets\n\n")
	var below, cpu, tls []string
	eachCell(func(c cell) {
		t, u := m.tput[c], m.cpu[c]
		name := fmt.Sprintf("%s %dx%d", c.op, c.conns, c.inflight)
		if x := median(t[sysRelay]) / median(t[sysRedisP]); x < 1.0 {
			below = append(below, fmt.Sprintf("%s (%.2fx)", name, x))
		}
		if x := median(u[sysRelay]) / median(u[sysRedisP]); c.inflight == 16 && x > 1.0 {
			cpu = append(cpu, fmt.Sprintf("%s (%.2fx)", name, x))
		}
		if x := median(t[sysRelayTLS]) / median(t[sysRelay]); x < 0.7 {
			tls = append(tls, fmt.Sprintf("%s (%.2fx)", name, x))
		}
	})
	verdict(w, "relay throughput >= 1.0x redis's with the same pipelining, in every cell", below)
	verdict(w, "relay server CPU per operation <= 1.0x redis's at 16 in flight", cpu)
	verdict(w, "relay TLS throughput >= 0.7x plain in every cell", tls)
	if raw == 0 {
		fmt.Fprintf(w, "- not measured: single-client relay median GET (needs -conns and -inflight to include 1)\n")
		return
	}
	const single = "single-client relay median GET <= redis's and <= 1.2x the raw round trip"
	verdict(w, single+", threads placed by the machine", latencyMisses(m.lat, raw))
	if rawOne > 0 {
		verdict(w, single+", every process on one processor", latencyMisses(m.latOne, rawOne))
	}
}

// latencyMisses says how the single-client relay median misses its target in lat, if it
// does: above redis's (pipelined) median, or above 1.2x the raw round trip raw.
func latencyMisses(lat map[string][]time.Duration, raw time.Duration) []string {
	relayMed, redisMed := percentile(lat[sysRelay], 0.5), percentile(lat[sysRedisP], 0.5)
	var out []string
	if relayMed > redisMed {
		out = append(out, fmt.Sprintf("relay %s vs redis %s", micros(relayMed), micros(redisMed)))
	}
	if x := float64(relayMed) / float64(raw); x > 1.2 {
		out = append(out, fmt.Sprintf("relay %.2fx raw", x))
	}
	return out
}

func verdict(w io.Writer, target string, below []string) {
	if len(below) == 0 {
		fmt.Fprintf(w, "- met: %s\n", target)
		return
	}
	fmt.Fprintf(w, "- MISSED: %s; below in %s\n", target, strings.Join(below, ", "))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread returns the largest relative range among the series.
func spread(series ...[]float64) string {
	worst := 0.0
	for _, xs := range series {
		if med := median(xs); med > 0 {
			worst = max(worst, (slices.Max(xs)-slices.Min(xs))/med)
		}
	}
	return fmt.Sprintf("%.0f%%", 100*worst)
}

// percentile sorts ds in place and returns its q-quantile (nearest rank).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

// thousands formats x rounded to an integer with comma separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
