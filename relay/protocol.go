package relay

import (
	"context"

	"github.com/globalsession/globalsession/relay/internal/endpoint"
)

// The protocol's ends live in relay/internal/endpoint; these names are how importers reach
// them, and how the tier above speaks of them.

// Client is a connection to one relay-protocol server (a relay, or a sibling endpoint)
// that many goroutines share: requests are pipelined on one connection and matched to
// replies by id. It reconnects with backoff when the connection is lost and
// re-establishes its subscriptions, queue memberships and streams. Every method is safe
// for concurrent use. It implements Backend, DurableBackend, BatchBackend,
// sessioncache.Remote and sessioncache.StreamRemote. Its methods are documented where it
// is defined: go doc ./relay/internal/endpoint Client.
type Client = endpoint.Client

// ClientConfig configures a Client. The zero value of every field but Addr is a
// documented default (go doc ./relay/internal/endpoint ClientConfig).
type ClientConfig = endpoint.ClientConfig

// QueueHandler answers a request handed to a client as a member of a queue (see
// Client.Join). key and value are the request's own copies. It returns the value to answer
// with, or an error whose message goes back to the requester.
type QueueHandler = endpoint.QueueHandler

// NewClient returns a client that connects to cfg.Addr in the background and keeps
// reconnecting until Close. A request made while it is disconnected waits for the
// connection, up to its deadline; once attempts to connect have failed for
// cfg.WaitForServer (the server is down, or refuses the hello), a request has one attempt
// made at once and fails with ErrUnavailable and its error if it fails too.
func NewClient(cfg ClientConfig) (*Client, error) { return endpoint.NewClient(cfg) }

// Dial is NewClient followed by waiting, up to ctx's deadline, for the first connection.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) { return endpoint.Dial(ctx, cfg) }

// ServerOptions are the connection settings shared by the relay and the sibling endpoint:
// TLS, secret, frame limit, heartbeat, timeouts, queue lengths, connection limit and
// logger (go doc ./relay/internal/endpoint ServerOptions).
type ServerOptions = endpoint.ServerOptions

// ServerStats are the counts of a relay protocol server's connections and requests.
type ServerStats = endpoint.ServerStats

// RequestStats is a relay protocol server's account of the answered requests of one op:
// replies by status and a latency histogram over LatencyBuckets.
type RequestStats = endpoint.RequestStats

// LatencyBuckets are the upper bounds, in seconds, of the request latency histograms in
// RequestStats.
var LatencyBuckets = endpoint.LatencyBuckets

// RemoteError is an error reply from the peer, carrying its message.
type RemoteError = endpoint.RemoteError

// Backend answers the entry requests that arrive over a relay connection: the sibling
// answers its relay through one, a pressure-relief server answers its sibling through one
// (ClientConfig.Backend). *Client implements it too, so a tier can hand its requests on to
// a server below. Every version carries a revision: a backend keeps the version of a key
// with the highest revision, and a deletion as a tombstone.
type Backend = endpoint.Backend

// DurableBackend is a Backend that can store a new entry with the key's aging relief
// servers before it answers: the strict write concern (see sessioncache.WriteDurable). The
// sibling is one; a *Client to a sibling is one too.
type DurableBackend = endpoint.DurableBackend

// BatchBackend is a Backend that takes many hand-downs in one call: one frame and one reply
// for all of them instead of one each. The sibling is one; a *Client is one too.
type BatchBackend = endpoint.BatchBackend

// StreamBackend is a Backend that takes new entries as a stream, without a reply each: the
// relay hands new entries to it from the request that stored them. The sibling is one; a
// *Client (and so a ChildSibling) is one too.
type StreamBackend = endpoint.StreamBackend

// InlineBackend is a Backend whose calls always return quickly (an in-memory store, say),
// which a connection may call on its reader goroutine when ServesInline reports true.
type InlineBackend = endpoint.InlineBackend

// PrefetchBackend is a Backend that can be told the keys of the requests a connection has
// received but not yet served, and of a batch of hand-downs before it is served, so that
// its memory misses for them overlap. A relief server is one.
type PrefetchBackend = endpoint.PrefetchBackend

// HandDown is one change a tier hands to the tier below: an eviction (an entry, or with
// Entry.Deleted a tombstone, pushed out of its table), or with Delete set a deletion for
// every server below.
type HandDown = endpoint.HandDown

// DefaultQueueAttempts is how many members a request is offered to, one after another,
// when members' connections are lost while they hold it.
const DefaultQueueAttempts = endpoint.DefaultQueueAttempts

// MaxQueueWait bounds how long the server waits for a member's answer, whatever deadline
// the requester sent, so a request cannot pin the server's resources indefinitely.
const MaxQueueWait = endpoint.MaxQueueWait

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrNotFound means no tier holds the key. It is sessioncache.ErrNotFound, so callers of
	// either package test for one value.
	ErrNotFound = endpoint.ErrNotFound
	// ErrClosed means the client or server was closed.
	ErrClosed = endpoint.ErrClosed
	// ErrUnavailable means the server could not be reached, or the connection was lost,
	// before the request's deadline.
	ErrUnavailable = endpoint.ErrUnavailable
	// ErrTimeout means a request got no reply before its deadline.
	ErrTimeout = endpoint.ErrTimeout
	// ErrRefused means the server refused the hello (wrong secret or version).
	ErrRefused = endpoint.ErrRefused
	// ErrConnLost means the connection closed while a request was in flight.
	ErrConnLost = endpoint.ErrConnLost
	// ErrNoOwner is a lower tier's answer to an eviction when it knows no server to keep
	// evictions (no relief server ever joined the sibling): the eviction is dropped, and
	// counted, there. A relay that gets it stops handing evictions down for a second.
	ErrNoOwner = endpoint.ErrNoOwner
)
