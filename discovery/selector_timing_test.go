package discovery

import (
	"context"
	"fmt"
	"testing"
)

// Selection at 1,000 instances: the path a gateway takes for every new session.
func BenchmarkSelect(b *testing.B) {
	snap := snapshotOf(1000, func(i int) float64 { return float64(i % 17) })
	for _, tc := range []struct {
		name string
		sel  Selector
	}{{"round-robin", &RoundRobin{}}, {"least-loaded", &LeastLoaded{Metric: "sessions"}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.sel.Select(snap, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRoute(b *testing.B) {
	src := &fixed{snapshotOf(1000, func(i int) float64 { return float64(i % 17) })}
	for _, sticky := range []bool{false, true} {
		b.Run(fmt.Sprintf("sticky=%v", sticky), func(b *testing.B) {
			ss, _ := NewSessionService(SessionConfig{Source: src, Metric: "sessions", NotSticky: !sticky})
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = fmt.Sprint("session-", i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := ss.Route(ctx, keys[i%len(keys)], "doc"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
