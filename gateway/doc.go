// Package gateway is the front door of global-sessions for browsers: login and session
// cookies, and (being built) the WebSocket proxy that routes each session to its backend
// and the push hub.
//
// # Sessions
//
// A login (Login, with an Authenticator: Anonymous, UsersFile with bcrypt hashes, or your
// own) creates a Session: a random 256-bit id in a cookie (HttpOnly, SameSite=Lax, Secure
// over TLS) naming a record in the session store, a sessioncache.Manager, so every process
// of the host and every host behind the relay tier sees it. The record holds the user's
// identity and a JWT the gateway signs (TokenSigner, HS256 or ES256) for the backends; the
// browser never sees the JWT. Sessions slide: a use after half the TTL extends it, never
// past MaxAge. Logout deletes the session everywhere.
package gateway
