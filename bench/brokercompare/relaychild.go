package main

import (
	"context"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// tableShape is the shape of every session table of the run: the relay's and each
// gateway instance's.
func tableShape(path string) sessioncache.Config {
	return sessioncache.Config{Path: path, ElementCount: 10000, RecordSize: 1024}
}

// serveRelay runs the relay (the child "relay") with its table at path until SIGTERM.
func serveRelay(path string) error {
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Table: tableShape(path)})
	if err != nil {
		return err
	}
	announce("LISTEN", r.Addr().String())
	waitStop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.Shutdown(ctx)
}
