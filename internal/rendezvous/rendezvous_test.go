package rendezvous

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i)
	}
	return out
}

func TestSpreadsEvenly(t *testing.T) {
	r := New(names(4), func(s string) string { return s })
	counts := map[string]int{}
	for i := range 40000 {
		counts[r.Owners(nil, fmt.Appendf(nil, "key-%d", i), 1)[0]]++
	}
	for n, c := range counts {
		assert.InDelta(t, 10000, c, 600, "node %s owns %d keys", n, c)
	}
}

func TestOnlyTheLeaversKeysMove(t *testing.T) {
	all := names(5)
	before := New(all, func(s string) string { return s })
	after := New(append(append([]string(nil), all[:2]...), all[3:]...), func(s string) string { return s })
	moved := 0
	for i := range 20000 {
		k := fmt.Appendf(nil, "key-%d", i)
		b, a := before.Owners(nil, k, 1)[0], after.Owners(nil, k, 1)[0]
		if b != a {
			require.Equal(t, "node-2", b, "a key of a node that stayed moved")
			moved++
		}
		// The second choice before is the first choice after, for the leaver's keys.
		if b == "node-2" {
			assert.Equal(t, before.Owners(nil, k, 2)[1], a)
		}
	}
	assert.InDelta(t, 4000, moved, 400)
}

func TestOwnersOrder(t *testing.T) {
	r := New(names(3), func(s string) string { return s })
	o := r.Owners(nil, []byte("k"), 5)
	require.Len(t, o, 3)
	assert.Equal(t, r.Owners(nil, []byte("k"), 1)[0], o[0])
	assert.ElementsMatch(t, names(3), o)
	assert.Empty(t, New([]string{}, func(s string) string { return s }).Owners(nil, []byte("k"), 1))
}
