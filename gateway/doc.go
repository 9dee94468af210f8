// Package gateway is the front door of global-sessions for browsers: login, session
// cookies, and the JWT the gateway signs for the backends.
//
// A login (Login, with an Authenticator: Anonymous, UsersFile with bcrypt hashes, or your
// own) creates a Session: a random 256-bit id in a cookie (HttpOnly, SameSite=Lax, Secure
// over TLS) naming a record in the session store, a sessioncache.Manager, so every process
// of the host and every host behind the relay tier sees it. The record holds the user's
// identity and a JWT the gateway signs (TokenSigner, HS256 or ES256) for the backends; the
// browser never sees the JWT. Sessions slide: a use after half the TTL extends it, never
// past MaxAge. Logout deletes the session everywhere.
//
// Single sign-on through an OpenID Connect provider (OIDC, configured by OIDCConfig) makes
// the same sessions: the authorization code flow with PKCE, state and nonce checked and
// the ID token verified against the provider's keys. The provider's tokens stay on the
// server, sealed in the session store beside the session; OIDC.Tokens refreshes them, and
// a refused refresh, a logout or the provider's back-channel logout ends the session.
//
// This package does not serve WebSockets and does not route anything; importing it brings
// in neither discovery nor a WebSocket library. The gateway's other jobs are packages of
// their own, each built on these sessions:
//
//   - [github.com/globalsession/globalsession/gateway/wsproxy]: the WebSocket proxy that
//     routes each session to its backend (Proxy, SessionRoute).
//   - [github.com/globalsession/globalsession/gateway/hub]: the push hub, with its command
//     registry, per-user loops and event-stream (SSE) topics.
//   - [github.com/globalsession/globalsession/gateway/broker]: the broker mode, which sends
//     clients' messages through relay queues to workers and their replies to clients and
//     groups, with the instance assignment and discovery of gateway instances.
package gateway
