package discovery

import "time"

// Instance is what discovery knows of one instance: where it is, whether it is healthy,
// and its latest metrics. Values returned by a Service are snapshots; do not modify them.
type Instance struct {
	Target
	// Healthy is true when the last health check got a 2xx answer in time.
	Healthy bool `json:"healthy"`
	// LastError says why the last health check failed; empty when healthy.
	LastError string `json:"last_error,omitempty"`
	// LastCheck is when health was last checked; zero before the first check.
	LastCheck time.Time `json:"last_check,omitzero"`
	// Since is when Healthy last changed (or the instance was first seen).
	Since time.Time `json:"since"`
	// Metrics holds the latest metrics: for each metric family, the sum of its series'
	// values (counters, gauges, untyped; _sum and _count for summaries and histograms).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// MetricsError says why the last metrics poll failed; the previous metrics are kept.
	MetricsError string `json:"metrics_error,omitempty"`
}

// Metric returns the value of a metric family, and whether the instance reported it.
func (in Instance) Metric(name string) (float64, bool) {
	v, ok := in.Metrics[name]
	return v, ok
}
