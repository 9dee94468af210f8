package eventloop

import (
	"log/slog"
	"time"
)

// Config is what the loops enforce on every pair, as the proxy's goroutine pipe does.
type Config struct {
	// MaxMessageSize bounds a message in either direction, in bytes.
	MaxMessageSize int64
	// PingInterval is how often both sides are pinged; a side that sends nothing (not even
	// a pong) for two intervals is gone.
	PingInterval time.Duration
	// WriteTimeout bounds how long bytes may wait to be written to a side.
	WriteTimeout time.Duration
	// Logger receives closings and failures. Required.
	Logger *slog.Logger
}

// Stats is the state of a proxy's loops, for tests.
type Stats struct {
	Loops   int // event loops (each a goroutine while it relays pairs)
	Open    int // pairs being relayed
	IORings int // loops that batch their socket calls through an io_uring
	Holding int // loops that hold descriptors (epoll, wake-up, io_uring)
}
