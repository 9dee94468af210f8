package main

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/bench/internal/proccpu"
	"github.com/globalsession/globalsession/bench/internal/procs"
)

// system is a server to measure: its URL and the process whose CPU time is counted (for
// "direct" the backend, else the proxy, nginx's master with its worker).
type system struct {
	name, url string
	pid       int
}

// cell is one measurement: messages per second over all connections, round-trip latency
// percentiles, and the CPU time the measured server process used per echoed message.
type cell struct {
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration
}

// workloads are the connection counts measured.
var workloads = []int{1, 100}

// results maps a connection count and a system name to the median cell over rounds.
type results map[int]map[string]cell

// measureAll runs every workload on every system for -rounds rounds, rotating the order of
// the systems each round, and keeps the median of each figure.
func measureAll(systems []system) (results, error) {
	raw := map[int]map[string][]cell{}
	for r := range *flagRounds {
		for _, n := range workloads {
			if raw[n] == nil {
				raw[n] = map[string][]cell{}
			}
			for i := range systems {
				s := systems[(i+r)%len(systems)]
				c, err := runCell(s, n)
				if err != nil {
					return nil, fmt.Errorf("%s, %d connections: %w", s.name, n, err)
				}
				procs.Logf("round %d  %-7s %3d conns: %9.0f msg/s  p50 %-10v p99 %-10v cpu/msg %v", r+1, s.name, n, c.rate, c.p50, c.p99, c.cpu)
				raw[n][s.name] = append(raw[n][s.name], c)
			}
		}
	}
	res := results{}
	for n, bySys := range raw {
		res[n] = map[string]cell{}
		for name, cs := range bySys {
			res[n][name] = cell{
				rate: median(cs, func(c cell) float64 { return c.rate }),
				p50:  time.Duration(median(cs, func(c cell) float64 { return float64(c.p50) })),
				p99:  time.Duration(median(cs, func(c cell) float64 { return float64(c.p99) })),
				cpu:  time.Duration(median(cs, func(c cell) float64 { return float64(c.cpu) })),
			}
		}
	}
	return res, nil
}

func median(cs []cell, f func(cell) float64) float64 {
	v := make([]float64, len(cs))
	for i, c := range cs {
		v[i] = f(c)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

var dialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// closeConn sends a normal close and closes the socket.
func closeConn(c *websocket.Conn) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()
}

// runCell opens n connections to s; each echoes 64-byte text messages in a loop for the
// warm-up and then the measured duration.
func runCell(s system, n int) (cell, error) {
	url := s.url
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			closeConn(c)
		}
	}()
	for range n {
		c, _, err := dialer.Dial(url, nil)
		if err != nil {
			return cell{}, err
		}
		conns = append(conns, c)
	}
	var measuring, stop atomic.Bool
	lats := make([][]time.Duration, n)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	deadline := time.Now().Add(*flagWarmup + *flagDuration + 10*time.Second)
	msg := bytes.Repeat([]byte("x"), 64)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		c.SetWriteDeadline(deadline)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Now()
				err := c.WriteMessage(websocket.TextMessage, msg)
				var got []byte
				if err == nil {
					_, got, err = c.ReadMessage()
				}
				if err == nil && len(got) != len(msg) {
					err = fmt.Errorf("echo of %d bytes, want %d", len(got), len(msg))
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if measuring.Load() {
					lats[i] = append(lats[i], time.Since(t0))
				}
			}
		}()
	}
	time.Sleep(*flagWarmup)
	measuring.Store(true)
	start, cpu0 := time.Now(), proccpu.Process(s.pid)
	time.Sleep(*flagDuration)
	measuring.Store(false)
	elapsed, cpu := time.Since(start), proccpu.Process(s.pid)-cpu0
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return cell{}, firstErr
	}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return cell{}, fmt.Errorf("no message echoed")
	}
	slices.Sort(all)
	return cell{
		rate: float64(len(all)) / elapsed.Seconds(),
		p50:  all[len(all)/2],
		p99:  all[len(all)*99/100],
		cpu:  cpu / time.Duration(len(all)),
	}, nil
}
