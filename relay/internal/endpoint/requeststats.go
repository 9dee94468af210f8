package endpoint

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// LatencyBuckets are the upper bounds, in seconds, of a server's request latency
// histogram: from a request's arrival to its reply being queued for the peer.
var LatencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// RequestStats is a server's account of the requests of one op that were answered.
type RequestStats struct {
	// Op is the op's name ("get", "publish", ...).
	Op string
	// ByStatus counts the replies by status ("ok", "value", "not found", "error").
	ByStatus map[string]uint64
	// Buckets counts the replies by latency: Buckets[i] those within LatencyBuckets[i]
	// and above the bucket before; the last, those above every bound.
	Buckets []uint64
	// Count is the replies counted, and Sum their latencies added up.
	Count uint64
	Sum   time.Duration
}

// opCounts are one op's counts, updated without locks.
type opCounts struct {
	byStatus [4]atomic.Uint64 // by wire.Status
	buckets  [17]atomic.Uint64
	sum      atomic.Int64 // nanoseconds
}

// requestClock times a server's requests from arrival to reply, per connection, and adds
// them to the server's counts.
type requestClock struct {
	counts *[256]opCounts // the server's, by op
	mu     sync.Mutex
	open   map[uint64]openRequest // by request id
}

type openRequest struct {
	op    wire.Op
	since time.Time
}

func newRequestClock(counts *[256]opCounts) *requestClock {
	return &requestClock{counts: counts, open: map[uint64]openRequest{}}
}

// start notes f's arrival, if a reply will come.
func (k *requestClock) start(f *wire.Frame) {
	if k == nil || f.ID == 0 || f.Flags&wire.FlagNoReply != 0 && (f.Op == wire.OpSet || f.Op == wire.OpEvict) {
		return
	}
	k.mu.Lock()
	k.open[f.ID] = openRequest{op: f.Op, since: time.Now()}
	k.mu.Unlock()
}

// done counts the reply to request id with status.
func (k *requestClock) done(id uint64, status wire.Status) {
	if k == nil {
		return
	}
	k.mu.Lock()
	r, ok := k.open[id]
	delete(k.open, id)
	k.mu.Unlock()
	if !ok {
		return
	}
	d := time.Since(r.since)
	c := &k.counts[r.op]
	if int(status) < len(c.byStatus) {
		c.byStatus[status].Add(1)
	}
	i := 0
	for i < len(LatencyBuckets) && d.Seconds() > LatencyBuckets[i] {
		i++
	}
	c.buckets[i].Add(1)
	c.sum.Add(int64(d))
}

// requestStats reads counts into one RequestStats per op that has replies.
func requestStats(counts *[256]opCounts) []RequestStats {
	var out []RequestStats
	for op := range counts {
		c := &counts[op]
		st := RequestStats{Op: wire.Op(op).String(), ByStatus: map[string]uint64{}, Buckets: make([]uint64, len(c.buckets))}
		for s := range c.byStatus {
			if n := c.byStatus[s].Load(); n > 0 {
				st.ByStatus[wire.Status(s).String()] = n
				st.Count += n
			}
		}
		if st.Count == 0 {
			continue
		}
		for i := range c.buckets {
			st.Buckets[i] = c.buckets[i].Load()
		}
		st.Sum = time.Duration(c.sum.Load())
		out = append(out, st)
	}
	return out
}
