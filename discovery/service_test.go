package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// engine is a fake backend instance: a real HTTP server whose health and metrics the test
// controls.
type engine struct {
	srv     *httptest.Server
	status  atomic.Int64 // health status code
	hang    atomic.Bool  // health never answers (until the test ends)
	metrics atomic.Value // string
	release chan struct{}
}

func newEngine(t *testing.T, sessions int) *engine {
	e := &engine{release: make(chan struct{})}
	e.status.Store(200)
	e.metrics.Store(fmt.Sprintf("# TYPE qix_active_sessions gauge\nqix_active_sessions %d\n", sessions))
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if e.hang.Load() {
			select {
			case <-e.release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(int(e.status.Load()))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, e.metrics.Load().(string))
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() { close(e.release); e.srv.Close() })
	return e
}

func (e *engine) addr() string { return strings.TrimPrefix(e.srv.URL, "http://") }

// switchable is a provider whose list and failure the test sets.
type switchable struct {
	mu      sync.Mutex
	targets []Target
	err     error
}

func (p *switchable) set(err error, ts ...Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets, p.err = ts, err
}

func (p *switchable) Name() string { return "switchable" }

func (p *switchable) Targets(context.Context) ([]Target, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Target(nil), p.targets...), p.err
}

func newService(t *testing.T, p Provider, cfg Config) *Service {
	t.Helper()
	cfg.Provider = p
	if cfg.Timeout == 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func byKey(snap *Snapshot) map[string]Instance {
	m := map[string]Instance{}
	for _, in := range snap.All {
		m[in.Key()] = in
	}
	return m
}

func TestHealthMetricsAndTheList(t *testing.T) {
	a, b, c := newEngine(t, 3), newEngine(t, 7), newEngine(t, 0)
	p := &switchable{}
	p.set(nil, Target{ID: "a", Addr: a.addr()}, Target{ID: "b", Addr: b.addr()}, Target{ID: "c", Addr: c.addr()})
	s := newService(t, p, Config{})
	ctx := context.Background()

	s.Refresh(ctx)
	snap := s.Snapshot()
	require.Len(t, snap.All, 3)
	require.Len(t, snap.Healthy, 3)
	in := byKey(snap)
	v, ok := in["b"].Metric("qix_active_sessions")
	assert.True(t, ok)
	assert.Equal(t, 7.0, v)

	// b turns unhealthy (500), c hangs, a answers garbage metrics.
	b.status.Store(500)
	c.hang.Store(true)
	a.metrics.Store("this is { not prometheus")
	start := time.Now()
	s.Poll(ctx)
	assert.Less(t, time.Since(start), 5*time.Second, "a hanging instance must not hold the poll")
	in = byKey(s.Snapshot())
	assert.True(t, in["a"].Healthy)
	assert.NotEmpty(t, in["a"].MetricsError)
	v, _ = in["a"].Metric("qix_active_sessions")
	assert.Equal(t, 3.0, v, "the last good metrics are kept")
	assert.False(t, in["b"].Healthy)
	assert.Contains(t, in["b"].LastError, "status 500")
	assert.False(t, in["c"].Healthy)
	assert.Contains(t, in["c"].LastError, "no answer within")
	assert.Len(t, s.Healthy(), 1)

	// b recovers; c disappears from the provider's list.
	b.status.Store(204)
	p.set(nil, Target{ID: "a", Addr: a.addr()}, Target{ID: "b", Addr: b.addr()})
	s.Refresh(ctx)
	in = byKey(s.Snapshot())
	assert.Len(t, in, 2)
	assert.True(t, in["b"].Healthy)

	// The provider fails: the last good list stays, and /v1/health says why.
	p.set(fmt.Errorf("api server down"))
	s.Refresh(ctx)
	snap = s.Snapshot()
	assert.Len(t, snap.All, 2)
	assert.Equal(t, "api server down", snap.ProviderError)
	rec := httptest.NewRecorder()
	Handler(s, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/health", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "api server down")
}

func TestRedirectLoop(t *testing.T) {
	e := newEngine(t, 0)
	s := newService(t, Static{{ID: "e", Addr: e.addr()}}, Config{HealthPath: "/loop", MetricsPath: "-"})
	s.Refresh(context.Background())
	in := s.Instances()[0]
	assert.False(t, in.Healthy)
	assert.Contains(t, in.LastError, "redirects")
}

func TestWatch(t *testing.T) {
	e := newEngine(t, 0)
	p := &switchable{}
	s := newService(t, p, Config{})
	ch, stop := s.Watch()
	defer stop()
	p.set(nil, Target{ID: "e", Addr: e.addr()})
	go s.Refresh(context.Background())
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no change notified")
	}
}

// TestStartFollowsWithinAnInterval runs the service on short intervals and waits, through
// Watch, for a change made to an instance to show.
func TestStartFollowsWithinAnInterval(t *testing.T) {
	e := newEngine(t, 0)
	s := newService(t, Static{{ID: "e", Addr: e.addr()}}, Config{RefreshInterval: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	ch, stop := s.Watch()
	defer stop()
	s.Start()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !cond() {
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("healthy", func() bool { return len(s.Healthy()) == 1 })
	e.status.Store(503)
	waitFor("unhealthy", func() bool { return len(s.Healthy()) == 0 })
}

func TestAPI(t *testing.T) {
	e := newEngine(t, 4)
	s := newService(t, Static{{ID: "e1", Addr: e.addr(), Labels: map[string]string{"zone": "a"}}}, Config{})
	s.Refresh(context.Background())
	ss, err := NewSessionService(SessionConfig{Source: s})
	require.NoError(t, err)
	h := Handler(s, ss)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	rec := get("/v1/engines")
	require.Equal(t, 200, rec.Code)
	var list []Instance
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1)
	assert.Equal(t, "a", list[0].Labels["zone"])
	assert.Equal(t, 4.0, list[0].Metrics["qix_active_sessions"])
	assert.True(t, list[0].Healthy)

	rec = get("/v1/health")
	assert.Equal(t, 200, rec.Code)
	rec = get("/metrics")
	assert.Contains(t, rec.Body.String(), "discovery_instances_healthy 1")
	rec = get("/")
	assert.Contains(t, rec.Body.String(), "1 of 1 instances healthy")
	assert.Contains(t, rec.Body.String(), "qix_active_sessions=4")
	rec = get("/v1/route?session=s1&document=doc.qvf")
	require.Equal(t, 200, rec.Code)
	var r Route
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	assert.Equal(t, "ws://"+e.addr()+"/app/doc.qvf", r.URL)
	rec = get("/v1/route?session=s1")
	assert.Equal(t, 400, rec.Code)
}

// The poller sends health and metrics requests in one write on a kept connection; an
// instance that closes the connection after the first answer still gets its metrics read
// (on a fresh connection), and one that closes kept connections between polls too.
func TestPollerPipelinesAndSurvivesClosedConnections(t *testing.T) {
	closing := http.NewServeMux()
	closing.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	})
	closing.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# HELP qix_active_sessions Sessions.\n# TYPE qix_active_sessions gauge\nqix_active_sessions 4\n")
	})
	srv, conns := countingServer(t, closing)
	s := newService(t, Static{{ID: "e", Addr: strings.TrimPrefix(srv.URL, "http://")}}, Config{})
	for range 3 {
		s.Refresh(context.Background())
		in := s.Instances()[0]
		require.True(t, in.Healthy, in.LastError)
		require.Empty(t, in.MetricsError)
		require.Equal(t, 4.0, in.Metrics["qix_active_sessions"])
	}
	// Each poll, the pair goes on the connection kept from before and the instance
	// closes it after health; the metrics left unanswered go on a fresh connection, which
	// the next poll uses: 1 + 3 connections.
	require.Equal(t, int64(4), conns.Load())

	// An instance that keeps connections: one connection for every poll.
	keeping := http.NewServeMux()
	keeping.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {})
	keeping.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "qix_active_sessions 2\n")
	})
	srv2, kept := countingServer(t, keeping)
	s2 := newService(t, Static{{ID: "e", Addr: strings.TrimPrefix(srv2.URL, "http://")}}, Config{})
	for range 3 {
		s2.Refresh(context.Background())
		require.Equal(t, 2.0, s2.Instances()[0].Metrics["qix_active_sessions"])
	}
	require.Equal(t, int64(1), kept.Load())
	// The instance drops its idle connections: the next poll reconnects once.
	srv2.CloseClientConnections()
	s2.Refresh(context.Background())
	in := s2.Instances()[0]
	require.True(t, in.Healthy, in.LastError)
	require.Equal(t, 2.0, in.Metrics["qix_active_sessions"])
	require.Equal(t, int64(2), kept.Load())
}

// countingServer starts h and counts the connections made to it.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestARefreshDoesNotWaitForAPollInFlight: an instance that hangs in the middle of a poll
// is dropped from the list; the refresh that drops it neither waits for that poll's network
// I/O nor blocks the service meanwhile (no lock is held across I/O), and the hanging
// connection is closed when the poll gives it back.
func TestARefreshDoesNotWaitForAPollInFlight(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(hang.Close)
	fine := newEngine(t, 1)
	p := &switchable{}
	p.set(nil, Target{ID: "hang", Addr: strings.TrimPrefix(hang.URL, "http://")}, Target{ID: "fine", Addr: fine.addr()})
	s := newService(t, p, Config{Timeout: time.Minute, MetricsPath: "-"})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		s.Refresh(context.Background())
	}()
	t.Cleanup(func() { // first of the cleanups: let the hanging handler and the poll end
		close(release)
		<-polled
	})
	<-entered // a poll is waiting for the hanging instance

	p.set(nil, Target{ID: "fine", Addr: fine.addr()})
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		s.Refresh(context.Background())
	}()
	select {
	case <-refreshed:
	case <-time.After(30 * time.Second): // a guard against a hang, far below the poll's minute
		t.Fatal("the refresh waited for the poll in flight")
	}
	snap := s.Snapshot()
	require.Len(t, snap.All, 1)
	assert.Equal(t, "fine", snap.All[0].ID)
	assert.True(t, snap.All[0].Healthy)
}

// TestReadinessNeedsAHealthyInstance: /v1/health is liveness (200 with no healthy
// instance), /v1/ready is 503 until an instance is healthy.
func TestReadinessNeedsAHealthyInstance(t *testing.T) {
	p := &switchable{}
	s := newService(t, p, Config{MetricsPath: "-"})
	s.Refresh(context.Background())
	h := Handler(s, nil)
	code := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code
	}
	assert.Equal(t, http.StatusOK, code("/v1/health"))
	assert.Equal(t, http.StatusServiceUnavailable, code("/v1/ready"))
	e := newEngine(t, 1)
	p.set(nil, Target{ID: "e", Addr: e.addr()})
	s.Refresh(context.Background())
	assert.Equal(t, http.StatusOK, code("/v1/ready"))
}
