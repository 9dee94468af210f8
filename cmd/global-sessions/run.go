package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/globalsession/globalsession/internal/admin"
	"github.com/globalsession/globalsession/internal/config"
)

//go:embed default.conf
var defaultConf []byte

// shutdownTimeout bounds a clean stop.
const shutdownTimeout = 10 * time.Second

// run loads the config (or the embedded default), runs its role until ctx ends, and stops.
// It prints where each part listens to out.
func run(ctx context.Context, path string, out io.Writer, log *slog.Logger) error {
	var f *config.File
	var err error
	if path == "" {
		f, err = config.Parse(defaultConf, "embedded default", "")
	} else {
		f, err = config.Load(path)
	}
	if err != nil {
		return err
	}
	return runFile(ctx, f, out, log)
}

// runFile runs the role of a loaded config.
func runFile(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) error {
	switch f.Role() {
	case config.RoleRelay:
		return runRelay(ctx, f, out, log)
	case config.RoleSibling:
		return runSibling(ctx, f, out, log)
	case config.RoleDiscovery:
		return runDiscovery(ctx, f, out, log)
	case config.RoleGateway:
		return runGateway(ctx, f, out, log)
	case config.RoleFrontEnd:
		return &config.Error{File: f.Name, Field: "my_messages", Msg: "this is a front end's file (lru and my_messages): " +
			"a program opens its Manager with relay/clientconfig; the binary runs the servers"}
	default:
		if !f.FullEdge {
			log.Info("config: the file sets none of edge_supported_relay, half_edge and full_edge; its lru and message_relay blocks make it a pressure-relief server",
				"file", f.Name)
		}
		var stops stopper
		s, err := startRelief(ctx, f, out, log, &stops)
		if err == nil {
			err = startAdmin(f, out, log, &stops, func(a *admin.Server) { reliefMetrics(a, s) })
		}
		if err == nil {
			<-ctx.Done()
			fmt.Fprintln(out, "stopping")
		}
		if serr := stops.stop(); err == nil {
			err = serr
		}
		return err
	}
}

// stopper collects what must be stopped, in reverse order of starting.
type stopper []func(context.Context) error

func (s stopper) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		errs = append(errs, s[i](ctx))
	}
	return errors.Join(errs...)
}

// serveUntil serves handler on ln until ctx ends (or serving fails), then shuts the server
// down and calls also, each with the shutdown deadline.
func serveUntil(ctx context.Context, ln net.Listener, handler http.Handler, out io.Writer, also ...func(context.Context) error) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	fmt.Fprintln(out, "stopping")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(sctx)}
	for _, f := range also {
		errs = append(errs, f(sctx))
	}
	return errors.Join(errs...)
}
