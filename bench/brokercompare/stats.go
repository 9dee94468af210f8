package main

import (
	"slices"
	"time"
)

// sample is one cell's figures in one round.
type sample struct {
	rate       float64       // messages (group cells: edits) per second
	deliveries float64       // group cells: group copies received per second by all members
	p50, p99   time.Duration // round-trip latency (group cells: edit round trip)
}

// latencies are round-trip times, one slice per connection so that no goroutine shares
// one.
type latencies [][]time.Duration

// percentiles returns the median and the 99th percentile over all connections, and how
// many round trips there were.
func (l latencies) percentiles() (p50, p99 time.Duration, n int) {
	all := slices.Concat(l...)
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)*99/100], len(all)
}

// medianOf returns the median of f over samples.
func medianOf(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// medianSample is the figure-by-figure median of samples over rounds.
func medianSample(ss []sample) sample {
	return sample{
		rate:       medianOf(ss, func(s sample) float64 { return s.rate }),
		deliveries: medianOf(ss, func(s sample) float64 { return s.deliveries }),
		p50:        time.Duration(medianOf(ss, func(s sample) float64 { return float64(s.p50) })),
		p99:        time.Duration(medianOf(ss, func(s sample) float64 { return float64(s.p99) })),
	}
}
