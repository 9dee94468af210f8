// Package discovery finds the backend instances sessions can be routed to, watches their
// health and load, and chooses one for each session: the design of Mira (Qlik's
// discovery service for its Associative Engine, whose HTTP API this one follows) and of its
// session service.
//
// # Discovery
//
// A Service asks its Provider for the list of instances every RefreshInterval (a static
// list, DNS A/AAAA or SRV records, Kubernetes EndpointSlices, or a file that is re-read
// when it changes; Provider is an interface for others), and polls every instance's health
// endpoint and Prometheus metrics endpoint every PollInterval, each request bounded by
// Timeout. An instance is healthy when its health endpoint answers 2xx in time; an
// unhealthy one is kept, marked, with its last error; one the provider stops listing is
// dropped. A provider that fails leaves the last good list in place and the failure is
// reported. Snapshot returns the state at a moment with one atomic load; Watch signals
// changes. Handler serves the Mira-style HTTP API and a status page.
//
// # Sessions
//
// A SessionService chooses an instance for a user's session and document with a Selector
// (RoundRobin, the original design's; LeastLoaded by a metric, the default when one is named) and
// keeps the choice while the instance stays healthy (sticky), asks a Preparer to open the
// session there, and returns a Route: the WebSocket URL, the backend session id and the
// headers to send. With no healthy instance it fails with ErrNoHealthyInstance (HTTP 503
// with the reason), never routing to a dead instance. It serves gateways in process
// (Route) or over HTTP (ServeHTTP, and RemoteSessions on the gateway's side).
package discovery
