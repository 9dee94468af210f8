// Package rendezvous ranks nodes for a key by rendezvous (highest random weight) hashing:
// every key has its own order of the nodes, and when a node joins or leaves only the keys
// it ranks first for move.
package rendezvous

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Node is something keys are spread over, known by a stable name.
type Node[T any] struct {
	Name  string
	Value T
	seed  uint64
}

// Ring holds the nodes. It is immutable: build a new one when the nodes change.
type Ring[T any] struct {
	nodes []Node[T]
}

// New returns a ring over nodes, named by name(node).
func New[T any](values []T, name func(T) string) *Ring[T] {
	r := &Ring[T]{nodes: make([]Node[T], len(values))}
	for i, v := range values {
		n := name(v)
		r.nodes[i] = Node[T]{Name: n, Value: v, seed: xxhash.Sum64String(n)}
	}
	return r
}

// Len returns the number of nodes.
func (r *Ring[T]) Len() int { return len(r.nodes) }

// score is the weight of node n for a key hash: a strong mix of the two.
func score(keyHash, nodeSeed uint64) uint64 {
	x := keyHash ^ nodeSeed
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owners appends to dst the first n nodes for key, best first (all of them if n exceeds
// the count), and returns the extended slice.
func (r *Ring[T]) Owners(dst []T, key []byte, n int) []T {
	n = min(n, len(r.nodes))
	if n <= 0 {
		return dst
	}
	h := xxhash.Sum64(key)
	if n == 1 {
		best, bestScore := 0, uint64(0)
		for i := range r.nodes {
			if s := score(h, r.nodes[i].seed); i == 0 || s > bestScore {
				best, bestScore = i, s
			}
		}
		return append(dst, r.nodes[best].Value)
	}
	type ranked struct {
		score uint64
		i     int
	}
	rs := make([]ranked, len(r.nodes))
	for i := range r.nodes {
		rs[i] = ranked{score(h, r.nodes[i].seed), i}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	for _, x := range rs[:n] {
		dst = append(dst, r.nodes[x.i].Value)
	}
	return dst
}
