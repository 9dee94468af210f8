package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Route tells a gateway where to open a session's WebSocket.
type Route struct {
	// URL is the WebSocket URL on the chosen instance.
	URL string `json:"url"`
	// Instance is the chosen instance's key.
	Instance string `json:"instance"`
	// SessionID is the backend session the Preparer opened (empty without one).
	SessionID string `json:"session_id,omitempty"`
	// Headers are to be sent to the backend with the upgrade request.
	Headers map[string]string `json:"headers,omitempty"`
}

// Preparer opens the document on the chosen instance and keeps a session alive there (the
// original design's engine session with a TTL), returning the backend session id and any
// headers the gateway must send.
type Preparer interface {
	Prepare(ctx context.Context, in Instance, session, document string) (sessionID string, headers map[string]string, err error)
}

// PreparerFunc adapts a function to a Preparer.
type PreparerFunc func(ctx context.Context, in Instance, session, document string) (string, map[string]string, error)

// Prepare implements Preparer.
func (f PreparerFunc) Prepare(ctx context.Context, in Instance, session, document string) (string, map[string]string, error) {
	return f(ctx, in, session, document)
}

// SessionConfig configures a SessionService.
type SessionConfig struct {
	// Source is where healthy instances come from: a *Service, in process.
	Source interface{ Snapshot() *Snapshot }
	// Selector picks an instance. Nil means a LeastLoaded on Metric when Metric is set,
	// else RoundRobin.
	Selector Selector
	// Metric is the load metric of the default selector.
	Metric string
	// Sticky keeps a user's session and document on the instance chosen first, while it
	// stays healthy (default on; set NotSticky to turn it off).
	NotSticky bool
	// StickyTTL is how long an unused sticky route is remembered. Zero means 30 minutes.
	StickyTTL time.Duration
	// Preparer, when set, opens the session on the chosen instance.
	Preparer Preparer
	// URL builds the WebSocket URL for an instance and document. Nil means
	// "ws://<addr>/app/<document>".
	URL func(in Instance, document string) string
}

// SessionService chooses an instance for a user's session and document and prepares the
// session there, as the original design's session service does. It is usable in process (Route) and
// over HTTP (ServeHTTP).
type SessionService struct {
	cfg    SessionConfig
	mu     sync.Mutex
	sticky map[string]stickyRoute
	sweep  time.Time
}

type stickyRoute struct {
	instance string
	route    Route
	used     time.Time
}

// NewSessionService returns a session service over cfg.Source.
func NewSessionService(cfg SessionConfig) (*SessionService, error) {
	if cfg.Source == nil {
		return nil, errors.New("discovery: session service: no source")
	}
	if cfg.Selector == nil {
		if cfg.Metric != "" {
			cfg.Selector = &LeastLoaded{Metric: cfg.Metric}
		} else {
			cfg.Selector = &RoundRobin{}
		}
	}
	if cfg.StickyTTL == 0 {
		cfg.StickyTTL = 30 * time.Minute
	}
	if cfg.URL == nil {
		cfg.URL = func(in Instance, document string) string {
			return "ws://" + in.Addr + "/app/" + url.PathEscape(document)
		}
	}
	return &SessionService{cfg: cfg, sticky: map[string]stickyRoute{}}, nil
}

// Route chooses (or, when sticky, recalls) an instance for session and document and
// prepares the session on it. It never returns a route to an instance that is not healthy
// in the current snapshot; with none healthy it fails with ErrNoHealthyInstance. When the
// Preparer fails on the chosen instance, the next healthy instance is tried, and so on
// once over every healthy instance; the error then names each instance's failure.
func (s *SessionService) Route(ctx context.Context, session, document string) (Route, error) {
	return s.route(ctx, session, document, "")
}

// Reroute is Route for a session whose route led to an instance that refused the
// connection (refused is that instance's key, as in Route.Instance): a sticky route to it
// is forgotten and the choice is made among the other healthy instances, so a backend that
// died just now costs one refused dial, not a poll interval of them.
func (s *SessionService) Reroute(ctx context.Context, session, document, refused string) (Route, error) {
	return s.route(ctx, session, document, refused)
}

func (s *SessionService) route(ctx context.Context, session, document, avoid string) (Route, error) {
	snap := s.cfg.Source.Snapshot()
	key := session + "\x00" + document
	if !s.cfg.NotSticky {
		if r, ok := s.recall(snap, key, avoid); ok {
			return r, nil
		}
	}
	var failed []string
	if avoid != "" {
		failed = append(failed, avoid)
	}
	var errs []error
	for range len(snap.Healthy) + 1 { // the last pass finds none left

		r, err := s.choose(ctx, snap, failed, session, document)
		if err == nil {
			if !s.cfg.NotSticky {
				s.remember(key, r)
			}
			return r, nil
		}
		if errors.Is(err, ErrNoHealthyInstance) && len(errs) > 0 {
			break // every healthy instance was tried
		}
		var pe *prepareError
		if !errors.As(err, &pe) {
			return Route{}, err
		}
		errs = append(errs, err)
		failed = append(failed, pe.instance)
	}
	return Route{}, fmt.Errorf("%w: %w", ErrPrepare, prepareErrors(errs))
}

// prepareErrors are the Preparer's failures on each instance tried, in one line.
type prepareErrors []error

func (e prepareErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e prepareErrors) Unwrap() []error { return e }

// ErrPrepare means the Preparer failed on every healthy instance; the error also holds
// each instance's failure.
var ErrPrepare = errors.New("discovery: no instance could prepare the session")

// prepareError is the Preparer's failure on one instance.
type prepareError struct {
	instance string
	err      error
}

func (e *prepareError) Error() string {
	return fmt.Sprintf("discovery: prepare session on %s: %v", e.instance, e.err)
}

func (e *prepareError) Unwrap() error { return e.err }

// choose selects among snap's healthy instances other than those in failed and prepares
// the session there.
func (s *SessionService) choose(ctx context.Context, snap *Snapshot, failed []string, session, document string) (Route, error) {
	from := snap
	if len(failed) > 0 {
		from = snap.without(failed)
	}
	if len(from.Healthy) == 0 {
		return Route{}, ErrNoHealthyInstance
	}
	i, err := s.cfg.Selector.Select(from, session+"\x00"+document)
	if err != nil {
		return Route{}, err
	}
	in := from.Healthy[i]
	r := Route{URL: s.cfg.URL(in, document), Instance: in.Key()}
	if s.cfg.Preparer != nil {
		id, h, err := s.cfg.Preparer.Prepare(ctx, in, session, document)
		if err != nil {
			return Route{}, &prepareError{instance: in.Key(), err: err}
		}
		r.SessionID, r.Headers = id, h
	}
	return r, nil
}

// recall returns the sticky route for key if its instance is still healthy and is not
// avoid.
func (s *SessionService) recall(snap *Snapshot, key, avoid string) (Route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sticky[key]
	if !ok {
		return Route{}, false
	}
	if _, healthy := snap.HealthyIndex(st.instance); healthy && st.instance != avoid {
		st.used = time.Now()
		s.sticky[key] = st
		return st.route, true
	}
	delete(s.sticky, key)
	return Route{}, false
}

func (s *SessionService) remember(key string, r Route) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sticky[key] = stickyRoute{instance: r.Instance, route: r, used: now}
	if now.Sub(s.sweep) > s.cfg.StickyTTL {
		for k, st := range s.sticky {
			if now.Sub(st.used) > s.cfg.StickyTTL {
				delete(s.sticky, k)
			}
		}
		s.sweep = now
	}
}

// ServeHTTP serves GET /v1/route?session=S&document=D: the route as JSON, or 503 with a
// JSON reason when no instance is healthy, 400 for a missing parameter, 502 when the
// Preparer fails on every healthy instance. With &refused=INSTANCE it answers as Reroute.
func (s *SessionService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET or POST"})
		return
	}
	session, document := r.FormValue("session"), r.FormValue("document")
	if strings.TrimSpace(session) == "" || strings.TrimSpace(document) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "session and document are required"})
		return
	}
	route, err := s.route(r.Context(), session, document, r.FormValue("refused"))
	switch {
	case errors.Is(err, ErrNoHealthyInstance):
		snap := s.cfg.Source.Snapshot()
		reason := fmt.Sprintf("no healthy instance among %d known", len(snap.All))
		if snap.ProviderError != "" {
			reason += "; provider: " + snap.ProviderError
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": reason})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, route)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
