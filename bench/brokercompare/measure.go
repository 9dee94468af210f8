package main

import (
	"fmt"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
)

// Cell kinds.
const (
	kindEcho   = "echo"   // the baseline: straight to the echo server
	kindSender = "sender" // through the broker, replies to the sender
	kindGroup  = "group"  // through the broker, edits to groups of groupSize
)

// cellSpec names a cell: its kind and its size (connections; groups for kindGroup).
type cellSpec struct {
	kind string
	n    int
}

func (c cellSpec) String() string {
	if c.kind == kindGroup {
		return fmt.Sprintf("group G=%d", c.n)
	}
	return fmt.Sprintf("%s C=%d", c.kind, c.n)
}

// cells are measured in this order in round 1, rotated by one each round. The echo
// baseline has C = 10 for the group cell with G = 10 (one sender per group).
var cells = []cellSpec{
	{kindEcho, 1}, {kindEcho, 10}, {kindEcho, 100},
	{kindSender, 1}, {kindSender, 100},
	{kindGroup, 1}, {kindGroup, 10},
}

// results are the medians over rounds of every cell and the group cells' delivery check.
type results struct {
	cells      map[cellSpec]sample
	edits      int64    // edits sent in all group cells of all rounds
	copies     int64    // copies their readers received
	readers    int      // reader counts checked
	mismatches []string // failures of the delivery check
}

// measureAll runs every cell -rounds times, rotating their order each round.
func measureAll(t *topology) (*results, error) {
	raw := map[cellSpec][]sample{}
	res := &results{cells: map[cellSpec]sample{}}
	for r := range *flagRounds {
		for i := range cells {
			spec := cells[(i+r)%len(cells)]
			tag := fmt.Sprintf("r%d-%s%d", r+1, spec.kind, spec.n)
			var s sample
			var err error
			switch spec.kind {
			case kindEcho:
				s, err = echoCell(t, spec.n)
			case kindSender:
				s, err = senderCell(t, spec.n, tag)
			case kindGroup:
				var g groupResult
				g, err = groupCell(t, spec.n, tag)
				s = g.sample
				res.edits += g.edits
				res.copies += g.copies
				res.readers += spec.n * (groupSize - 1)
				for _, m := range g.mismatches {
					m = fmt.Sprintf("round %d, %v: %s", r+1, spec, m)
					procs.Logf("ERROR: delivery check: %s", m)
					res.mismatches = append(res.mismatches, m)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("round %d, %v: %w", r+1, spec, err)
			}
			line := fmt.Sprintf("round %d  %-14v %9.0f msg/s  p50 %-10v p99 %v", r+1, spec, s.rate, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond))
			if spec.kind == kindGroup {
				line = fmt.Sprintf("round %d  %-14v %9.0f edits/s %9.0f deliveries/s  p50 %-10v p99 %v", r+1, spec, s.rate, s.deliveries, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond))
			}
			procs.Logf("%s", line)
			raw[spec] = append(raw[spec], s)
		}
	}
	for spec, ss := range raw {
		res.cells[spec] = medianSample(ss)
	}
	return res, nil
}
