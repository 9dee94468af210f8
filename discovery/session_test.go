package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixed is a Source with a given snapshot.
type fixed struct{ snap *Snapshot }

func (f *fixed) Snapshot() *Snapshot { return f.snap }

func snapshotOf(n int, load func(i int) float64) *Snapshot {
	s := &Snapshot{Version: 1}
	for i := range n {
		in := Instance{Target: Target{ID: fmt.Sprintf("e%d", i), Addr: fmt.Sprintf("10.0.0.%d:9076", i)}, Healthy: true,
			Metrics: map[string]float64{"sessions": load(i)}}
		s.All = append(s.All, in)
		s.Healthy = append(s.Healthy, in)
	}
	return s
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	src := &fixed{snapshotOf(4, func(int) float64 { return 0 })}
	ss, err := NewSessionService(SessionConfig{Source: src, NotSticky: true})
	require.NoError(t, err)
	counts := map[string]int{}
	for i := range 400 {
		r, err := ss.Route(context.Background(), fmt.Sprint("s", i), "doc")
		require.NoError(t, err)
		counts[r.Instance]++
	}
	for k, c := range counts {
		assert.Equal(t, 100, c, k)
	}
}

func TestLeastLoadedFollowsTheMetric(t *testing.T) {
	// e0 is busy, the others idle: e0 gets few of the new sessions.
	src := &fixed{snapshotOf(4, func(i int) float64 {
		if i == 0 {
			return 1000
		}
		return 0
	})}
	ss, err := NewSessionService(SessionConfig{Source: src, Metric: "sessions", NotSticky: true})
	require.NoError(t, err)
	counts := map[string]int{}
	for i := range 2400 { // the others reach 800, still below e0's 1000
		r, err := ss.Route(context.Background(), fmt.Sprint("s", i), "doc")
		require.NoError(t, err)
		counts[r.Instance]++
	}
	assert.Zero(t, counts["e0"], "the busy instance should get nothing until the others catch up")
	for _, k := range []string{"e1", "e2", "e3"} {
		assert.InDelta(t, 800, counts[k], 150, k)
	}
}

func TestStickyKeepsRoutesWhileHealthy(t *testing.T) {
	snap := snapshotOf(3, func(int) float64 { return 0 })
	src := &fixed{snap}
	prepared := 0
	ss, err := NewSessionService(SessionConfig{Source: src, Preparer: PreparerFunc(
		func(ctx context.Context, in Instance, session, document string) (string, map[string]string, error) {
			prepared++
			return "qix-" + in.ID, map[string]string{"X-Qlik-Session": "qix-" + in.ID}, nil
		})})
	require.NoError(t, err)
	first, err := ss.Route(context.Background(), "alice", "doc")
	require.NoError(t, err)
	assert.Equal(t, "qix-"+first.Instance, first.SessionID)
	for range 10 {
		r, err := ss.Route(context.Background(), "alice", "doc")
		require.NoError(t, err)
		assert.Equal(t, first, r)
	}
	assert.Equal(t, 1, prepared, "a sticky route is prepared once")
	other, err := ss.Route(context.Background(), "alice", "other-doc")
	require.NoError(t, err)
	assert.NotEqual(t, first.Instance, other.Instance, "another document is another session")

	// The instance dies: the route moves to a live one, never to the dead one.
	next := &Snapshot{Version: 2, All: snap.All}
	for _, in := range snap.Healthy {
		if in.Key() != first.Instance {
			next.Healthy = append(next.Healthy, in)
		}
	}
	src.snap = next
	moved, err := ss.Route(context.Background(), "alice", "doc")
	require.NoError(t, err)
	assert.NotEqual(t, first.Instance, moved.Instance)
}

func TestNoHealthyInstance(t *testing.T) {
	src := &fixed{&Snapshot{All: []Instance{{Target: Target{ID: "dead"}}}, ProviderError: "dns timeout"}}
	ss, err := NewSessionService(SessionConfig{Source: src})
	require.NoError(t, err)
	_, err = ss.Route(context.Background(), "s", "d")
	require.ErrorIs(t, err, ErrNoHealthyInstance)

	srv := httptest.NewServer(ss)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/route?session=s&document=d")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	// The same through the HTTP client a gateway in another process uses.
	_, err = (&RemoteSessions{URL: srv.URL}).Route(context.Background(), "s", "d")
	require.ErrorIs(t, err, ErrNoHealthyInstance)
	assert.Contains(t, err.Error(), "dns timeout")
}

func TestPreparerFailure(t *testing.T) {
	src := &fixed{snapshotOf(1, func(int) float64 { return 0 })}
	ss, err := NewSessionService(SessionConfig{Source: src, Preparer: PreparerFunc(
		func(context.Context, Instance, string, string) (string, map[string]string, error) {
			return "", nil, errors.New("document not found")
		})})
	require.NoError(t, err)
	_, err = ss.Route(context.Background(), "s", "d")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "document not found")
}

// A preparation that fails on the chosen instance is tried on the next healthy one; the
// route that works is the one remembered.
func TestPreparerFailureTriesTheNextInstance(t *testing.T) {
	src := &fixed{snapshotOf(3, func(int) float64 { return 0 })}
	var tried []string
	ss, err := NewSessionService(SessionConfig{Source: src, Preparer: PreparerFunc(
		func(_ context.Context, in Instance, _, _ string) (string, map[string]string, error) {
			tried = append(tried, in.ID)
			if len(tried) < 3 {
				return "", nil, fmt.Errorf("%s is out of memory", in.ID)
			}
			return "sid-" + in.ID, nil, nil
		})})
	require.NoError(t, err)
	r, err := ss.Route(context.Background(), "alice", "doc")
	require.NoError(t, err)
	require.Len(t, tried, 3, "each healthy instance once")
	assert.ElementsMatch(t, []string{"e0", "e1", "e2"}, tried)
	assert.Equal(t, tried[2], r.Instance)
	assert.Equal(t, "sid-"+tried[2], r.SessionID)
	again, err := ss.Route(context.Background(), "alice", "doc")
	require.NoError(t, err)
	assert.Equal(t, r, again, "the working route is sticky")
	assert.Len(t, tried, 3)
}

// When every instance fails to prepare, the error says so and names each failure, in
// process and over HTTP (502).
func TestPreparerFailsEverywhere(t *testing.T) {
	src := &fixed{snapshotOf(2, func(int) float64 { return 0 })}
	ss, err := NewSessionService(SessionConfig{Source: src, Preparer: PreparerFunc(
		func(_ context.Context, in Instance, _, _ string) (string, map[string]string, error) {
			return "", nil, fmt.Errorf("%s: document not found", in.ID)
		})})
	require.NoError(t, err)
	_, err = ss.Route(context.Background(), "s", "d")
	require.ErrorIs(t, err, ErrPrepare)
	assert.Contains(t, err.Error(), "e0: document not found")
	assert.Contains(t, err.Error(), "e1: document not found")
	assert.NotContains(t, err.Error(), "\n")

	srv := httptest.NewServer(ss)
	defer srv.Close()
	_, err = (&RemoteSessions{URL: srv.URL}).Route(context.Background(), "s", "d")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "status 502")
	assert.Contains(t, err.Error(), "e1: document not found")
}

// Reroute leaves out the instance that refused the connection, even when a sticky route
// led there, and the new route is the one remembered; with no other instance it is
// ErrNoHealthyInstance. The same over HTTP.
func TestRerouteAvoidsTheRefusingInstance(t *testing.T) {
	src := &fixed{snapshotOf(2, func(int) float64 { return 0 })}
	ss, err := NewSessionService(SessionConfig{Source: src})
	require.NoError(t, err)
	srv := httptest.NewServer(ss)
	defer srv.Close()
	for name, r := range map[string]interface {
		Route(context.Context, string, string) (Route, error)
		Reroute(context.Context, string, string, string) (Route, error)
	}{"in process": ss, "over HTTP": &RemoteSessions{URL: srv.URL}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			first, err := r.Route(ctx, "alice-"+name, "doc")
			require.NoError(t, err)
			moved, err := r.Reroute(ctx, "alice-"+name, "doc", first.Instance)
			require.NoError(t, err)
			assert.NotEqual(t, first.Instance, moved.Instance)
			again, err := r.Route(ctx, "alice-"+name, "doc")
			require.NoError(t, err)
			assert.Equal(t, moved.Instance, again.Instance, "the new route is sticky")

			one := &fixed{snapshotOf(1, func(int) float64 { return 0 })}
			lone, err := NewSessionService(SessionConfig{Source: one})
			require.NoError(t, err)
			_, err = lone.Reroute(ctx, "bob", "doc", "e0")
			require.ErrorIs(t, err, ErrNoHealthyInstance)
		})
	}
}
