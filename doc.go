// Package globalsession keeps login sessions, and other small, short-lived objects, close to
// the processes that need them.
//
// The module is a set of packages:
//
//   - [github.com/globalsession/globalsession/sessioncache]: a shared-memory LRU table that
//     the processes of one host create or attach to, and the Manager that puts it in front
//     of the relay tier.
//   - [github.com/globalsession/globalsession/relay]: the relay client, the midway relay
//     with its own table, and the sibling endpoint that pressure-relief servers use.
//   - [github.com/globalsession/globalsession/relief]: pressure-relief servers (expansion
//     and aging) with memory, durable-log and Redis stores, extensible by embedding.
//   - [github.com/globalsession/globalsession/discovery]: a discovery service in the style
//     of Mira (Qlik's engine discovery service) and the session service that picks an
//     instance for each session.
//   - [github.com/globalsession/globalsession/gateway]: login, cookies, sessions and the
//     JWT for backends; its subpackages are the WebSocket proxy (gateway/wsproxy), the push
//     hub (gateway/hub) and the message broker with its workers (gateway/broker).
//   - cmd/global-sessions: the reference binary, configured by JSON files whose fields
//     follow the original design's examples.
//
// See README.md for the whole picture and how to run it, and docs/architecture.md for how
// the parts fit together.
package globalsession
