// Package hub is the gateway's push hub: a WebSocket endpoint, authenticated by the login
// session, to which browsers send JSON commands, {"type": name, "params": {...}}, from a
// registry you extend (Register). A user's tabs share one short and one long loop that
// push to all of them and stop when the last tab closes; every cycle checks the session
// first. With an EventSource (SSE is provided) the hub adds subscribe and unsubscribe over
// topics, one upstream subscription per topic for all its followers.
//
// It is not a message broker between clients (package broker is) and keeps nothing once a
// user's last tab closes; it does not log users in (package gateway does) and does not
// spread users over instances (a front gateway's wsproxy.SessionRoute with ByUser does).
package hub
