package sessionaccess

import (
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// Private is what a gateway.Sessions keeps to itself.
type Private struct {
	// Store keeps the session records.
	Store *sessioncache.Manager
	// MaxAge bounds a session's whole life.
	MaxAge time.Duration
	// TokenSession verifies a JWT the sessions' signer made and returns the id of the
	// session it names ("" when it names none).
	TokenSession func(token string) (string, error)
}

// of is the accessor package gateway registers: a func(*gateway.Sessions) Private.
var of any

// Register sets the accessor; package gateway calls it from its init.
func Register[S any](f func(S) Private) { of = f }

// Of returns what s, a *gateway.Sessions, keeps private.
func Of[S any](s S) Private { return of.(func(S) Private)(s) }
