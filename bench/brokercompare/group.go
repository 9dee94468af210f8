package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// groupSize is the members of each group: one sender and groupSize-1 readers.
	groupSize = 10
	// drainTimeout bounds the wait, after the senders stopped, for the copies in flight.
	drainTimeout = 2 * time.Second
)

// groupResult is a group cell's sample and the outcome of its delivery check.
type groupResult struct {
	sample
	edits      int64    // edits sent, warm-up included
	copies     int64    // copies the readers received, drain included
	mismatches []string // readers whose count differs from their sender's edits
}

// groupRun is one group cell in progress.
type groupRun struct {
	t        *topology
	tag      string
	members  [][]*websocket.Conn // [group][member]; member 0 sends
	where    [][]string          // the instance of each member
	sent     []atomic.Int64      // per group: edits sent
	received [][]atomic.Int64    // per group and member: copies a reader received
	lats     latencies           // per group: edit round trips in the measured time
	copies   atomic.Int64        // copies received by all members in the measured time
	draining atomic.Bool         // set when the readers are cut off after the drain
	k        *clock
}

// groupCell runs the group workload with n groups of groupSize members, alternating
// between the instances: member 0 of each group sends "set <payload>" and waits for its
// ack ("ok") and its own copy, in either order; the others count the copies they get. At
// the end each reader must have received exactly as many copies as its sender sent edits.
func groupCell(t *topology, n int, tag string) (groupResult, error) {
	r := &groupRun{t: t, tag: tag, members: make([][]*websocket.Conn, n), where: make([][]string, n),
		sent: make([]atomic.Int64, n), received: make([][]atomic.Int64, n), lats: make(latencies, n), k: newClock()}
	defer func() { closeAll(r.all()) }()
	for g := range n {
		r.received[g] = make([]atomic.Int64, groupSize)
		for j := range groupSize {
			gw := t.gateways[(g+j)%len(t.gateways)]
			c, err := dialBroker(gw, r.group(g), t.header)
			if err != nil {
				return groupResult{}, blame(err)
			}
			r.members[g] = append(r.members[g], c)
			r.where[g] = append(r.where[g], gw)
		}
	}
	var senders, readers sync.WaitGroup
	for g := range n {
		senders.Add(1)
		go func() { defer senders.Done(); r.send(g) }()
		for j := 1; j < groupSize; j++ {
			readers.Add(1)
			go func() { defer readers.Done(); r.read(g, j) }()
		}
	}
	elapsed, err := r.k.run()
	if err != nil {
		closeAll(r.all()) // unblocks everyone
		senders.Wait()
		readers.Wait()
		return groupResult{}, err
	}
	senders.Wait()
	r.drain()
	readers.Wait()
	if err := r.k.failure(); err != nil {
		return groupResult{}, err
	}
	p50, p99, edits := r.lats.percentiles()
	if edits == 0 {
		return groupResult{}, fmt.Errorf("no edit completed in %v", elapsed)
	}
	res := groupResult{sample: sample{rate: float64(edits) / elapsed.Seconds(),
		deliveries: float64(r.copies.Load()) / elapsed.Seconds(), p50: p50, p99: p99}}
	for g := range n {
		sent := r.sent[g].Load()
		res.edits += sent
		for j := 1; j < groupSize; j++ {
			got := r.received[g][j].Load()
			res.copies += got
			if got != sent {
				res.mismatches = append(res.mismatches, fmt.Sprintf("group %s: member %d (at %s) received %d copies, its sender (at %s) sent %d edits",
					r.group(g), j, r.where[g][j], got, r.where[g][0], sent))
			}
		}
	}
	return res, nil
}

func (r *groupRun) group(g int) string { return fmt.Sprintf("grp-%s-%d", r.tag, g) }

func (r *groupRun) all() []*websocket.Conn {
	var cs []*websocket.Conn
	for _, m := range r.members {
		cs = append(cs, m...)
	}
	return cs
}

// send is group g's sender: a closed loop of edits until the clock stops.
func (r *groupRun) send(g int) {
	c := r.members[g][0]
	fail := func(err error) { r.k.fail(fmt.Errorf("group %s sender: %w", r.group(g), err)) }
	for seq := 0; !r.k.stop.Load(); seq++ {
		msg := fmt.Appendf(nil, "set %s", payload())
		copy(msg[4:], fmt.Sprintf("%d:%d:", g, seq)) // distinct edits, same size
		t0 := time.Now()
		r.sent[g].Add(1)
		if err := writeTimed(c, msg); err != nil {
			fail(err)
			return
		}
		ack, own := false, false
		for !ack || !own {
			got, err := readTimed(c)
			switch {
			case err != nil:
				fail(err)
				return
			case !ack && string(got) == "ok":
				ack = true
			case !own && bytes.Equal(got, msg):
				own = true
			default:
				fail(unexpected(got, `"ok" or the edit's own copy`))
				return
			}
		}
		if r.k.measuring.Load() {
			r.lats[g] = append(r.lats[g], time.Since(t0))
			r.copies.Add(1)
		}
	}
}

// read is member j of group g: it counts the copies it receives until it is cut off
// after the drain.
func (r *groupRun) read(g, j int) {
	c := r.members[g][j]
	for {
		c.SetReadDeadline(time.Now().Add(opTimeout))
		if r.draining.Load() {
			return
		}
		_, msg, err := c.ReadMessage()
		if err != nil {
			if !r.draining.Load() {
				r.k.fail(fmt.Errorf("group %s member %d: %w", r.group(g), j, err))
			}
			return
		}
		if !strings.HasPrefix(string(msg), "set ") {
			r.k.fail(fmt.Errorf("group %s member %d: %w", r.group(g), j, unexpected(msg, "a copy of an edit")))
			return
		}
		r.received[g][j].Add(1)
		if r.k.measuring.Load() {
			r.copies.Add(1)
		}
	}
}

// drain waits, at most drainTimeout, until every reader has as many copies as its sender
// sent edits (the senders have stopped), then cuts the readers off.
func (r *groupRun) drain() {
	deadline := time.Now().Add(drainTimeout)
	for !r.balanced() && time.Now().Before(deadline) && r.k.failure() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	r.draining.Store(true)
	for _, m := range r.members {
		for _, c := range m[1:] {
			_ = c.NetConn().SetReadDeadline(time.Now())
		}
	}
}

// balanced reports whether every reader has received what its sender sent.
func (r *groupRun) balanced() bool {
	for g := range r.members {
		sent := r.sent[g].Load()
		for j := 1; j < groupSize; j++ {
			if r.received[g][j].Load() != sent {
				return false
			}
		}
	}
	return true
}
