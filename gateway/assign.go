package gateway

import (
	"errors"
	"net/http"

	"github.com/globalsession/globalsession/discovery"
)

// AssignerConfig configures an Assigner.
type AssignerConfig struct {
	// Sessions looks the login cookie up and records the assignments. Required.
	Sessions *Sessions
	// Router chooses an instance among the healthy ones: a *discovery.SessionService over
	// a discovery.Service fed by a MemberProvider, with BrokerURL as its URL. Required.
	Router Router
	// Instances tells whether a recorded instance is still healthy (the discovery.Service
	// behind the Router). Nil means recorded instances are not checked here: the Router is
	// asked every time (a sticky SessionService keeps the instance while it is healthy).
	Instances interface{ Snapshot() *discovery.Snapshot }
}

// Assigner is seed 002's main server duty: GET ?group=G (or ?document=G) tells a logged-in
// client which gateway instance to open its WebSocket to for group G, as JSON
// {"url": "ws://…/ws/G", "instance": "gw-1"}. The choice is recorded in the session, so
// the client keeps its instance (from any main server) while that instance is healthy; when
// it is not, a healthy one is chosen and recorded instead. Without a session the answer is
// 401; with no healthy instance, 503 with a JSON reason.
type Assigner struct {
	cfg AssignerConfig
}

// NewAssigner returns an Assigner.
func NewAssigner(cfg AssignerConfig) (*Assigner, error) {
	if cfg.Sessions == nil || cfg.Router == nil {
		return nil, errors.New("gateway: assigner config needs sessions and a router")
	}
	return &Assigner{cfg: cfg}, nil
}

// ServeHTTP implements the endpoint.
func (a *Assigner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	s, err := a.cfg.Sessions.Lookup(r.Context(), r)
	if errors.Is(err, ErrNoSession) {
		writeError(w, http.StatusUnauthorized, "log in first")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, "session store: "+err.Error())
		return
	}
	group := r.URL.Query().Get("group")
	if group == "" {
		group = r.URL.Query().Get("document")
	}
	if err := validGroup(group); err != nil {
		writeError(w, http.StatusBadRequest, "group: "+err.Error())
		return
	}
	if rec, ok := s.Assigned[group]; ok && a.alive(rec.Instance) {
		writeAssignment(w, rec)
		return
	}
	route, err := a.cfg.Router.Route(r.Context(), s.ID, group)
	if errors.Is(err, discovery.ErrNoHealthyInstance) {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	rec := Assignment{Instance: route.Instance, URL: route.URL}
	if s.Assigned == nil {
		s.Assigned = map[string]Assignment{}
	}
	s.Assigned[group] = rec
	if err := a.cfg.Sessions.Save(r.Context(), s); err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeAssignment(w, rec)
}

// alive reports whether a recorded instance may be kept.
func (a *Assigner) alive(instance string) bool {
	if a.cfg.Instances == nil {
		return false // let the Router decide; a sticky one keeps the instance while healthy
	}
	_, ok := a.cfg.Instances.Snapshot().HealthyIndex(instance)
	return ok
}

func writeAssignment(w http.ResponseWriter, rec Assignment) { writeJSON(w, http.StatusOK, rec) }
