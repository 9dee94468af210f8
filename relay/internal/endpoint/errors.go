package endpoint

import (
	"errors"
	"fmt"

	"github.com/globalsession/globalsession/sessioncache"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrNotFound means no tier holds the key. It is sessioncache.ErrNotFound, so callers of
	// either package test for one value.
	ErrNotFound = sessioncache.ErrNotFound
	// ErrClosed means the client or server was closed.
	ErrClosed = errors.New("relay: closed")
	// ErrUnavailable means the server could not be reached, or the connection was lost,
	// before the request's deadline.
	ErrUnavailable = errors.New("relay: server unavailable")
	// ErrTimeout means a request got no reply before its deadline.
	ErrTimeout = errors.New("relay: request timed out")
	// ErrRefused means the server refused the hello (wrong secret or version).
	ErrRefused = errors.New("relay: connection refused by server")
	// ErrConnLost means the connection closed while a request was in flight.
	ErrConnLost = errors.New("relay: connection lost")
	// ErrNoOwner is a lower tier's answer to an eviction when it knows no server to keep
	// evictions (no relief server ever joined the sibling): the eviction is dropped, and
	// counted, there. A relay that gets it stops handing evictions down for a second.
	ErrNoOwner = errors.New("relay: no relief server keeps evictions")
)

// RemoteError is an error reply from the peer, carrying its message.
type RemoteError struct {
	Op      string // the request that failed
	Message string // what the peer said
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("relay: %s: peer replied: %s", e.Op, e.Message)
}
