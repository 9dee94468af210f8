package main

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// payloadSize is the size of every payload the load generator sends.
const payloadSize = 64

func payload() []byte { return bytes.Repeat([]byte("x"), payloadSize) }

// closedLoop has every connection write msg and read one reply, which must be msg again,
// in a loop for the cell's time, and measures the round trips. The echo and the sender
// cells are this loop on different connections.
func closedLoop(conns []*websocket.Conn, msg []byte) (sample, error) {
	k := newClock()
	lats := make(latencies, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !k.stop.Load() {
				t0 := time.Now()
				err := writeTimed(c, msg)
				var got []byte
				if err == nil {
					got, err = readTimed(c)
				}
				if err == nil && !bytes.Equal(got, msg) {
					err = unexpected(got, "the message back")
				}
				if err != nil {
					k.fail(fmt.Errorf("connection %d: %w", i, err))
					return
				}
				if k.measuring.Load() {
					lats[i] = append(lats[i], time.Since(t0))
				}
			}
		}()
	}
	elapsed, err := k.run()
	if err != nil {
		closeAll(conns) // unblocks the readers
	}
	wg.Wait()
	if err == nil {
		err = k.failure()
	}
	if err != nil {
		return sample{}, err
	}
	p50, p99, n := lats.percentiles()
	if n == 0 {
		return sample{}, fmt.Errorf("no round trip completed in %v", elapsed)
	}
	return sample{rate: float64(n) / elapsed.Seconds(), p50: p50, p99: p99}, nil
}

// echoCell is the baseline: n connections straight to the echo server.
func echoCell(t *topology, n int) (sample, error) {
	conns := make([]*websocket.Conn, 0, n)
	defer func() { closeAll(conns) }()
	for range n {
		c, err := dialEcho(t.echoAddr)
		if err != nil {
			return sample{}, blame(err)
		}
		conns = append(conns, c)
	}
	return closedLoop(conns, payload())
}

// senderCell is n broker connections, alternating between the instances, each in a group
// of its own, sending "echo <payload>" and reading the worker's reply to the sender.
func senderCell(t *topology, n int, tag string) (sample, error) {
	conns := make([]*websocket.Conn, 0, n)
	defer func() { closeAll(conns) }()
	for i := range n {
		c, err := dialBroker(t.gateways[i%len(t.gateways)], fmt.Sprintf("snd-%s-%d", tag, i), t.header)
		if err != nil {
			return sample{}, blame(err)
		}
		conns = append(conns, c)
	}
	return closedLoop(conns, append([]byte("echo "), payload()...))
}
