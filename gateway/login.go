package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/globalsession/globalsession/gateway/internal/web"
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
			web.WriteError(w, http.StatusBadGateway, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/session" && r.Method == http.MethodGet:
		s, err := l.Sessions.Lookup(r.Context(), r)
		switch {
		case errors.Is(err, ErrNoSession):
			web.WriteError(w, http.StatusUnauthorized, "not logged in")
		case err != nil:
			web.WriteError(w, http.StatusBadGateway, err.Error())
		default:
			web.WriteJSON(w, http.StatusOK, public(s))
		}
	default:
		web.WriteError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is not a login endpoint")
	}
}

func (l *Login) login(w http.ResponseWriter, r *http.Request, a Authenticator) {
	if a == nil {
		web.WriteError(w, http.StatusNotFound, "no authenticator is configured")
		return
	}
	id, err := a.Authenticate(r.Context(), r)
	if errors.Is(err, ErrBadCredentials) {
		web.WriteError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	if err != nil {
		web.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s, err := l.Sessions.Create(r.Context(), w, r, id)
	if err != nil {
		web.WriteError(w, http.StatusBadGateway, err.Error())
		return
	}
	web.WriteJSON(w, http.StatusOK, public(s))
}
