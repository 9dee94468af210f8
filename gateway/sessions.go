package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/sessioncache"
)

// Defaults of SessionsConfig.
const (
	DefaultCookieName = "gs_session"
	DefaultSessionTTL = 30 * time.Minute
	DefaultMaxSession = 12 * time.Hour
)

// ErrNoSession means a request carries no session cookie, or one whose session is gone
// (expired, logged out, never existed).
var ErrNoSession = errors.New("gateway: no session")

// SessionsConfig configures Sessions.
type SessionsConfig struct {
	// Store keeps the session records: the host's shared-memory table in front of the
	// relay tier. Required.
	Store *sessioncache.Manager
	// Signer signs each session's JWT. Required.
	Signer *TokenSigner
	// CookieName is the session cookie's name. Empty means DefaultCookieName.
	CookieName string
	// TTL is how long a session lives without use; each use within it extends it (it
	// slides). Zero means DefaultSessionTTL.
	TTL time.Duration
	// MaxAge bounds a session's whole life, however much it is used. Zero means
	// DefaultMaxSession.
	MaxAge time.Duration
}

// Sessions are the gateway's login sessions: a random 256-bit id in a cookie (HttpOnly,
// SameSite=Lax, Secure over TLS) naming a record in the session store that holds the
// user's identity and the JWT the gateway signed for the backends.
type Sessions struct {
	cfg SessionsConfig
	now func() time.Time // replaced by tests
}

// Session is a session record.
type Session struct {
	// ID is the session id (the cookie's value).
	ID string `json:"-"`
	Identity
	// Token is the JWT for the backends. It never goes to the browser.
	Token string `json:"jwt"`
	// Created is when the user logged in.
	Created time.Time `json:"created"`
	// Expires is when the session ends unless it is used before.
	Expires time.Time `json:"expires"`
	// MaxExpires is when the session ends however much it is used.
	MaxExpires time.Time `json:"max_expires"`
	// Assigned records, per group (workbook, document), the gateway instance a
	// broker.Assigner chose, so the session keeps it while the instance lives.
	Assigned map[string]Assignment `json:"assigned,omitempty"`
}

// Assignment is the gateway instance a session was assigned for a group.
type Assignment struct {
	Instance string `json:"instance"`
	URL      string `json:"url"`
}

// The gateway's hub and broker packages reach the store and the signer of a Sessions
// through sessionaccess, which keeps them out of the exported API.
func init() {
	sessionaccess.Register(func(s *Sessions) sessionaccess.Private {
		return sessionaccess.Private{Store: s.cfg.Store, MaxAge: s.cfg.MaxAge, TokenSession: func(token string) (string, error) {
			c, err := s.cfg.Signer.Verify(token)
			if err != nil {
				return "", err
			}
			return c.Session, nil
		}}
	})
}

// NewSessions returns the gateway's sessions over cfg.Store.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("gateway: sessions need a store and a signer")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultSessionTTL
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxSession
	}
	return &Sessions{cfg: cfg, now: time.Now}, nil
}

// Create starts a session for id, stores it, and sets its cookie on w.
func (s *Sessions) Create(ctx context.Context, w http.ResponseWriter, r *http.Request, id Identity) (*Session, error) {
	sid, err := web.RandomID(32)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sess := &Session{ID: sid, Identity: id, Created: now, MaxExpires: now.Add(s.cfg.MaxAge)}
	sess.Expires = minTime(now.Add(s.cfg.TTL), sess.MaxExpires)
	if sess.Token, err = s.cfg.Signer.Sign(id, sid, sess.MaxExpires); err != nil {
		return nil, fmt.Errorf("gateway: sign the session's token: %w", err)
	}
	if err := s.store(ctx, sess); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: s.cfg.CookieName, Value: sid, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	return sess, nil
}

// Save stores a changed session record (its Assigned, say) under its id, keeping its
// expiry.
func (s *Sessions) Save(ctx context.Context, sess *Session) error { return s.store(ctx, sess) }

func (s *Sessions) store(ctx context.Context, sess *Session) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	ttl := sess.Expires.Sub(s.now())
	if ttl <= 0 {
		return ErrNoSession
	}
	if err := s.cfg.Store.Set(ctx, []byte(sess.ID), b, ttl); err != nil {
		return fmt.Errorf("gateway: store session: %w", err)
	}
	return nil
}

// Lookup returns the session of r's cookie, extending it when more than half of its TTL has
// passed (never past MaxExpires). It returns ErrNoSession when there is none.
func (s *Sessions) Lookup(ctx context.Context, r *http.Request) (*Session, error) {
	c, err := r.Cookie(s.cfg.CookieName)
	if err != nil || c.Value == "" {
		return nil, ErrNoSession
	}
	return s.LookupID(ctx, c.Value)
}

// LookupID is Lookup by session id (for checks made away from a request, such as the
// hub's cycles).
func (s *Sessions) LookupID(ctx context.Context, id string) (*Session, error) {
	c := &http.Cookie{Value: id}
	b, err := s.cfg.Store.Get(ctx, []byte(c.Value))
	if errors.Is(err, sessioncache.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: session store: %w", err)
	}
	sess := &Session{ID: c.Value}
	if err := json.Unmarshal(b, sess); err != nil {
		return nil, fmt.Errorf("gateway: session %s…: bad record: %w", c.Value[:min(6, len(c.Value))], err)
	}
	now := s.now()
	if !now.Before(sess.Expires) {
		return nil, ErrNoSession
	}
	if sess.Expires.Sub(now) < s.cfg.TTL/2 && sess.Expires.Before(sess.MaxExpires) {
		sess.Expires = minTime(now.Add(s.cfg.TTL), sess.MaxExpires)
		if err := s.store(ctx, sess); err != nil {
			return nil, err
		}
	}
	return sess, nil
}

// Logout deletes r's session everywhere (the local table, the relay tier, other hosts) and
// clears the cookie.
func (s *Sessions) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: s.cfg.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(s.cfg.CookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	if err := s.cfg.Store.Delete(ctx, []byte(c.Value)); err != nil {
		return fmt.Errorf("gateway: logout: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
