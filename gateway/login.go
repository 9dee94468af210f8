package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Login serves the login endpoints:
//
//	POST /login            log in with the Authenticator (for UsersFile: form values user
//	                       and password); 200 with the session's public part, 401 if refused
//	POST /login/anonymous  log in as a fresh anonymous user, when Anonymous is set
//	POST /logout           end the session everywhere; 204
//	GET  /session          the current session's public part, or 401
//
// The JWT stays on the server: no answer contains it.
type Login struct {
	// Sessions creates and ends sessions.
	Sessions *Sessions
	// Authenticator checks /login requests.
	Authenticator Authenticator
	// Anonymous allows /login/anonymous.
	Anonymous bool
}

// publicSession is what the browser may see of a session.
type publicSession struct {
	User      string    `json:"user"`
	Roles     []string  `json:"roles,omitempty"`
	Anonymous bool      `json:"anonymous,omitempty"`
	Expires   time.Time `json:"expires"`
}

func public(s *Session) publicSession {
	return publicSession{User: s.User, Roles: s.Roles, Anonymous: s.Anonymous, Expires: s.Expires}
}

// ServeHTTP implements http.Handler.
func (l *Login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		l.login(w, r, l.Authenticator)
	case r.URL.Path == "/login/anonymous" && r.Method == http.MethodPost && l.Anonymous:
		l.login(w, r, Anonymous{})
	case r.URL.Path == "/logout" && r.Method == http.MethodPost:
		if err := l.Sessions.Logout(r.Context(), w, r); err != nil {
			writeError(w, http.StatusBadGateway, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/session" && r.Method == http.MethodGet:
		s, err := l.Sessions.Lookup(r.Context(), r)
		switch {
		case errors.Is(err, ErrNoSession):
			writeError(w, http.StatusUnauthorized, "not logged in")
		case err != nil:
			writeError(w, http.StatusBadGateway, err.Error())
		default:
			writeJSON(w, http.StatusOK, public(s))
		}
	default:
		writeError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is not a login endpoint")
	}
}

func (l *Login) login(w http.ResponseWriter, r *http.Request, a Authenticator) {
	if a == nil {
		writeError(w, http.StatusNotFound, "no authenticator is configured")
		return
	}
	id, err := a.Authenticate(r.Context(), r)
	if errors.Is(err, ErrBadCredentials) {
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s, err := l.Sessions.Create(r.Context(), w, r, id)
	if err != nil {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, public(s))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
