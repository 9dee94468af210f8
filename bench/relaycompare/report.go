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
	fmt.Fprintf(w, "| op | conns | in flight | ops | relay | relay TLS | redis | relay/redis | relay TLS/redis | TLS/plain | spread |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, op := range opKinds {
		for _, conns := range connCounts {
			for _, inflight := range inflightSizes {
				t := m.tput[cell{op, conns, inflight}]
				p, s, r := median(t[sysRelay]), median(t[sysRelayTLS]), median(t[sysRedis])
				fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", op, conns, inflight,
					thousands(float64(m.ops[cell{op, conns, inflight}])),
					thousands(p), thousands(s), thousands(r), ratio(p, r), ratio(s, r), ratio(s, p),
					spread(t[sysRelay], t[sysRelayTLS], t[sysRedis]))
			}
		}
	}
	fmt.Fprintf(w, "\nspread: the largest (max-min)/median over the rounds among the three systems of the row.\n\n")

	fmt.Fprintf(w, "## GET latency, 1 connection, 1 request in flight\n\n")
	fmt.Fprintf(w, "| path | median | p99 | median / raw round trip |\n|---|--:|--:|--:|\n")
	raw := percentile(m.lat[sysRaw], 0.5)
	for _, n := range []string{sysRaw, sysRelay, sysRelayTLS, sysRedis} {
		med, p99 := percentile(m.lat[n], 0.5), percentile(m.lat[n], 0.99)
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", n, micros(med), micros(p99), ratio(float64(med), float64(raw)))
	}
	fmt.Fprintf(w, "\nraw TCP: a Go client writes a %d-byte request (the size of a relay GET) and reads a %d-byte "+
		"reply (the size of its answer) from a Go echo process that does nothing else; %s samples per path.\n\n",
		reqSize, replySize, thousands(float64(len(m.lat[sysRaw]))))

	targets(w, m, raw)

	fmt.Fprintf(w, "\nNotes: go-redis runs one command per pooled connection at a time (PoolSize = MaxActiveConns = "+
		"conns), so with more requests in flight than connections the others wait for the pool; a relay.Client "+
		"pipelines every request in flight on its one connection. Goroutine g uses relay client g %% conns.\n")
}

// targets states each target and the cells that miss it.
func targets(w io.Writer, m *measurements, raw time.Duration) {
	fmt.Fprintf(w, "## Targets\n\n")
	var below []string
	for _, conns := range connCounts {
		for _, inflight := range inflightSizes {
			t := m.tput[cell{opGet, conns, inflight}]
			if x := median(t[sysRelay]) / median(t[sysRedis]); x < 1.0 {
				below = append(below, fmt.Sprintf("%dx%d (%.2fx)", conns, inflight, x))
			}
		}
	}
	verdict(w, "relay GET throughput >= 1.0x redis at the same connections x in flight", below)

	x := float64(percentile(m.lat[sysRelay], 0.5)) / float64(raw)
	below = nil
	if x > 1.2 {
		below = append(below, fmt.Sprintf("relay median %.2fx raw", x))
	}
	verdict(w, fmt.Sprintf("single-client relay median GET latency <= 1.2x the raw round trip (%.2fx)", x), below)

	below = nil
	for _, op := range opKinds {
		for _, conns := range connCounts {
			for _, inflight := range inflightSizes {
				t := m.tput[cell{op, conns, inflight}]
				if x := median(t[sysRelayTLS]) / median(t[sysRelay]); x < 0.7 {
					below = append(below, fmt.Sprintf("%s %dx%d (%.2fx)", op, conns, inflight, x))
				}
			}
		}
	}
	verdict(w, "relay TLS throughput >= 0.7x plain in every cell", below)
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
