package endpoint

import (
	"testing"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// The clock counts each answered request once, by status, in the bucket of its latency;
// requests that get no reply, and replies to requests it never saw, are not counted.
func TestRequestClock(t *testing.T) {
	var counts [256]opCounts
	if len(counts[0].buckets) != len(LatencyBuckets)+1 {
		t.Fatalf("%d buckets for %d bounds", len(counts[0].buckets), len(LatencyBuckets))
	}
	k := newRequestClock(&counts)
	k.start(&wire.Frame{Op: wire.OpGet, ID: 1})
	k.start(&wire.Frame{Op: wire.OpGet, ID: 2})
	k.start(&wire.Frame{Op: wire.OpSet, ID: 3, Flags: wire.FlagNoReply})
	k.open[2] = openRequest{op: wire.OpGet, since: time.Now().Add(-time.Minute)} // a slow one
	k.done(1, wire.StatusValue)
	k.done(2, wire.StatusNotFound)
	k.done(1, wire.StatusValue) // twice: counted once
	k.done(9, wire.StatusOK)    // never seen
	stats := requestStats(&counts)
	if len(stats) != 1 || stats[0].Op != "get" || stats[0].Count != 2 {
		t.Fatalf("stats %+v", stats)
	}
	st := stats[0]
	if st.ByStatus["value"] != 1 || st.ByStatus["not found"] != 1 {
		t.Errorf("by status %v", st.ByStatus)
	}
	if st.Buckets[len(st.Buckets)-1] != 1 || st.Sum < time.Minute {
		t.Errorf("the minute-long request is not above every bound: %v, sum %v", st.Buckets, st.Sum)
	}
	if len(k.open) != 0 {
		t.Errorf("%d requests still open", len(k.open))
	}
}
