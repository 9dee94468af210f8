package main

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/globalsession/globalsession/bench/internal/wsecho"
)

// serveEcho is the baseline (the child "echo"): a plain gorilla/websocket server that
// sends every message back as it came, until SIGTERM.
func serveEcho() error {
	h := wsecho.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	announce("LISTEN", ln.Addr().String())
	waitStop()
	// The echo connections are hijacked: Shutdown only stops new ones; the process exit
	// ends the rest.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
