package revision

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNextIncreasesWhenTheWallClockStandsStillOrGoesBack(t *testing.T) {
	wall := time.Unix(100, 0)
	c := Clock{now: func() time.Time { return wall }}
	a := c.Next()
	assert.Equal(t, uint64(wall.UnixNano()), a)
	b := c.Next()
	assert.Greater(t, b, a, "same wall reading")
	wall = wall.Add(-time.Second)
	assert.Greater(t, c.Next(), b, "the wall clock went back")
}

func TestObserveOrdersLaterWritesAfterWhatWasSeen(t *testing.T) {
	var c Clock
	seen := uint64(time.Now().Add(time.Hour).UnixNano()) // a host whose clock runs ahead
	c.Observe(seen)
	assert.Greater(t, c.Next(), seen)
	c.Observe(1) // an older revision moves nothing
	assert.Greater(t, c.Next(), seen)
}

func TestNextNeverRepeatsAcrossGoroutines(t *testing.T) {
	var c Clock
	const workers, each = 4, 5000
	got := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				got[w] = append(got[w], c.Next())
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, g := range got {
		for i, r := range g {
			require.False(t, seen[r], "revision %d issued twice", r)
			seen[r] = true
			if i > 0 {
				require.Greater(t, r, g[i-1])
			}
		}
	}
}
