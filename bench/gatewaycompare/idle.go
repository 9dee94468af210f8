package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
	"github.com/gorilla/websocket"
)

// idleResult is a proxy's resident memory before and after opening idle connections.
type idleResult struct {
	name                string
	want, opened        int
	procs               int   // proxy processes holding them
	err                 error // why fewer than want were opened
	rssBefore, rssAfter int64 // bytes, summed over the processes
	openTime            time.Duration
}

// idleTarget is a proxy that holds idle connections: its URL and the processes whose
// memory counts.
type idleTarget struct {
	url  string
	pids []int
}

// rssSum adds up the VmRSS of the targets.
func rssSum(ts []idleTarget) (int64, error) {
	var sum int64
	for _, t := range ts {
		for _, pid := range t.pids {
			n, err := rss(pid)
			if err != nil {
				return 0, err
			}
			sum += n
		}
	}
	return sum, nil
}

// rss reads a process's VmRSS from /proc, in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// measureIdle opens n WebSockets through the proxy processes ts (in turn), each checked
// with one echo and then left idle (a reader answers the proxy's pings, as a browser
// would), and reads the proxies' RSS before and once they are all open.
func measureIdle(name string, ts []idleTarget, n int) idleResult {
	res := idleResult{name: name, want: n, procs: len(ts)}
	var err error
	if res.rssBefore, err = rssSum(ts); err != nil {
		res.err = err
		return res
	}
	procs.Logf("idle: opening %d connections through %s", n, name)
	conns := make([]*websocket.Conn, n)
	var next, opened atomic.Int64
	var failed atomic.Bool
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	msg := bytes.Repeat([]byte("i"), 64)
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() {
					return
				}
				c, err := openIdle(ts[i%len(ts)].url, msg)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i+1, err) })
					failed.Store(true)
					return
				}
				conns[i] = c
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	res.openTime = time.Since(start)
	res.opened = int(opened.Load())
	res.err = firstErr
	time.Sleep(2 * time.Second) // let the gateway settle
	res.rssAfter, err = rssSum(ts)
	if err != nil && res.err == nil {
		res.err = err
	}
	procs.Logf("idle: %d open in %v, %s RSS %d -> %d MiB", res.opened, res.openTime.Round(time.Millisecond), name, res.rssBefore>>20, res.rssAfter>>20)
	for _, c := range conns {
		if c != nil {
			c.NetConn().Close()
		}
	}
	return res
}

func openIdle(url string, msg []byte) (*websocket.Conn, error) {
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	err = c.WriteMessage(websocket.TextMessage, msg)
	if err == nil {
		_, _, err = c.ReadMessage()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return c, nil
}
