package discovery

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// ErrNoHealthyInstance means there is no healthy instance to route to.
var ErrNoHealthyInstance = errors.New("discovery: no healthy instance")

// Selector picks one of the healthy instances of a snapshot for a key (the user's session
// and document). Implementations must be safe for concurrent use.
type Selector interface {
	// Select returns the index in snap.Healthy of the chosen instance.
	Select(snap *Snapshot, key string) (int, error)
}

// SelectorFunc adapts a function to a Selector.
type SelectorFunc func(snap *Snapshot, key string) (int, error)

// Select implements Selector.
func (f SelectorFunc) Select(snap *Snapshot, key string) (int, error) { return f(snap, key) }

// RoundRobin takes the healthy instances in turn (the original design's session service strategy).
type RoundRobin struct {
	next atomic.Uint64
}

// Select implements Selector.
func (r *RoundRobin) Select(snap *Snapshot, _ string) (int, error) {
	n := len(snap.Healthy)
	if n == 0 {
		return 0, ErrNoHealthyInstance
	}
	return int((r.next.Add(1) - 1) % uint64(n)), nil
}

// LeastLoaded picks the less loaded of two healthy instances chosen at random (the "power
// of two choices"), by a metric the instances report, such as their active sessions. The
// routes it gave out since the metric was last polled count as load too, so a burst does
// not all land on the instance that was idlest at the last poll. Instances that do not
// report the metric count as unloaded.
type LeastLoaded struct {
	// Metric is the metric family to compare, e.g. "qix_active_sessions".
	Metric string

	mu    sync.Mutex
	cache *loadCache
}

type loadCache struct {
	version uint64
	load    []float64       // the metric per healthy instance
	given   []atomic.Uint64 // routes given out since the snapshot
}

func (l *LeastLoaded) loads(snap *Snapshot) *loadCache {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cache != nil && l.cache.version == snap.Version {
		return l.cache
	}
	c := &loadCache{version: snap.Version, load: make([]float64, len(snap.Healthy)), given: make([]atomic.Uint64, len(snap.Healthy))}
	for i := range snap.Healthy {
		c.load[i] = snap.Healthy[i].Metrics[l.Metric]
	}
	l.cache = c
	return c
}

// Select implements Selector.
func (l *LeastLoaded) Select(snap *Snapshot, _ string) (int, error) {
	n := len(snap.Healthy)
	if n == 0 {
		return 0, ErrNoHealthyInstance
	}
	c := l.loads(snap)
	a, b := rand.IntN(n), rand.IntN(n)
	if n > 1 {
		for b == a {
			b = rand.IntN(n)
		}
	}
	pick := a
	if c.load[b]+float64(c.given[b].Load()) < c.load[a]+float64(c.given[a].Load()) {
		pick = b
	}
	c.given[pick].Add(1)
	return pick, nil
}
