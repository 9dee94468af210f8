package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
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
	default:
		var stops stopper
		err := startRelief(ctx, f, out, log, &stops)
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

// startRelief starts the relief server a relief config describes.
func startRelief(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger, stops *stopper) error {
	rc, err := f.ReliefConfig(ctx, log)
	if err != nil {
		return err
	}
	s, err := relief.New(rc)
	if err != nil {
		if rc.Store != nil {
			rc.Store.Close()
		}
		return err
	}
	*stops = append(*stops, func(context.Context) error { return s.Close() })
	if err := s.Start(ctx, nil); err != nil {
		return err
	}
	state := "subscribed to"
	if !s.Client().Connected() {
		state = "waiting for"
	}
	fmt.Fprintf(out, "relief: %s server %q %s the sibling at %s\n", s.Kind(), s.ID(), state, rc.Sibling.Addr)
	return nil
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

func runRelay(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) (err error) {
	var stops stopper
	defer func() {
		if serr := stops.stop(); err == nil {
			err = serr
		}
	}()
	rc, err := f.RelayConfig(log)
	if err != nil {
		return err
	}
	r, err := relay.NewRelay(rc)
	if err != nil {
		return err
	}
	stops = append(stops, r.Shutdown)
	fmt.Fprintf(out, "relay: serving front ends on %s (auth path %q, table %s)\n", r.Addr(), rc.AuthPath, r.Table().Path())

	plan, err := f.RelaySibling(rc, log)
	if err != nil {
		return err
	}
	if plan.Command != nil {
		child, err := relay.NewChildSibling(relay.ChildConfig{Command: plan.Command, Logger: log})
		if err != nil {
			return err
		}
		if plan.StopChild {
			stops = append(stops, func(context.Context) error { return child.Close() })
		} else {
			stops = append(stops, func(context.Context) error { return child.Client.Close() })
		}
		r.SetLower(child)
		fmt.Fprintf(out, "sibling: child process %q\n", plan.Command)
	} else {
		s, err := relay.NewSibling(*plan.Config)
		if err != nil {
			return err
		}
		stops = append(stops, s.Shutdown)
		r.SetLower(s)
		fmt.Fprintf(out, "sibling: serving pressure-relief servers on %s\n", s.Addr())
		// Relief servers of the same process connect to this sibling unless told otherwise.
		host, port, _ := net.SplitHostPort(s.Addr().String())
		for _, rf := range f.ReliefServers {
			if rf.MessageRelay.Port == nil {
				p, _ := strconv.Atoi(port)
				rf.MessageRelay.Address, rf.MessageRelay.Port = host, &p
			}
		}
	}
	for _, rf := range f.ReliefServers {
		if err := startRelief(ctx, rf, out, log, &stops); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}

func runSibling(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) (err error) {
	sc, err := f.SiblingConfig(log)
	if err != nil {
		return err
	}
	link, err := relay.InheritedLink()
	if err != nil {
		return err
	}
	s, err := relay.NewSibling(sc)
	if err != nil {
		if link != nil {
			link.Close()
		}
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if serr := s.Shutdown(sctx); err == nil {
			err = serr
		}
	}()
	fmt.Fprintf(out, "sibling: serving pressure-relief servers on %s\n", s.Addr())
	var relayGone <-chan struct{}
	if link != nil {
		relayGone = s.ServeRelayConn(link)
		fmt.Fprintln(out, "sibling: serving its relay over the inherited link")
	}
	select {
	case <-ctx.Done():
	case <-relayGone:
		fmt.Fprintln(out, "sibling: the relay is gone; stopping")
	}
	return nil
}

// runDiscovery runs a discovery service and its session service over HTTP.
func runDiscovery(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) error {
	dcfg, scfg, addr, err := f.DiscoveryConfig(log)
	if err != nil {
		return err
	}
	d, err := discovery.New(dcfg)
	if err != nil {
		return err
	}
	defer d.Close()
	scfg.Source = d
	sessions, err := discovery.NewSessionService(scfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("discovery: listen %s: %w", addr, err)
	}
	d.Refresh(ctx) // serve a first list from the start
	d.Start()
	fmt.Fprintf(out, "discovery: serving the Mira API, the session service and a status page on http://%s/\n", ln.Addr())
	return serveUntil(ctx, ln, discovery.Handler(d, sessions), out)
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

// runGateway runs the login endpoints, the WebSocket proxy, the push hub and, with a broker
// block, the broker mode with its assignment endpoint.
func runGateway(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) error {
	parts, err := f.GatewayParts(ctx, log)
	if err != nil {
		return err
	}
	defer parts.Close()
	mux := http.NewServeMux()
	mux.Handle("/login", parts.Login)
	mux.Handle("/login/", parts.Login)
	mux.Handle("/logout", parts.Login)
	mux.Handle("/session", parts.Login)
	mux.Handle("/hub", parts.Hub)
	// http.Server.Shutdown leaves hijacked WebSockets alone: the proxy, the hub and the
	// broker close theirs.
	also := []func(context.Context) error{parts.Hub.Shutdown}
	if parts.Proxy != nil {
		mux.Handle("/app/", parts.Proxy)
		also = append(also, parts.Proxy.Shutdown)
	}
	ln, err := net.Listen("tcp", parts.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", parts.Addr, err)
	}
	scheme, ws := "http", "ws"
	if parts.TLS != nil {
		ln = tls.NewListener(ln, parts.TLS)
		scheme, ws = "https", "wss"
	}
	fmt.Fprintf(out, "gateway: login on %s://%s/login, WebSockets on %s://%s/app/<document>, push hub on %s://%s/hub\n",
		scheme, ln.Addr(), ws, ln.Addr(), ws, ln.Addr())
	if parts.Broker != nil {
		bp, err := parts.StartBroker(ctx, scheme+"://"+ln.Addr().String(), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer bp.Close()
		mux.Handle("/ws/", bp.Broker)
		mux.Handle("/v1/assign", bp.Assigner)
		mux.Handle("/v1/hub", bp.HubAssigner)
		mux.Handle("/health", bp.Broker.Health())
		mux.Handle("/metrics", bp.Broker.Metrics())
		also = append(also, bp.Broker.Shutdown)
		fmt.Fprintf(out, "gateway: broker instance %s: %s://%s/ws/<group> to queue %q, assignments on %s://%s/v1/assign?group=<group> and (the hub, by user) %s://%s/v1/hub\n",
			bp.Broker.Instance(), ws, ln.Addr(), queueName(parts.Broker.Queue), scheme, ln.Addr(), scheme, ln.Addr())
	}
	return serveUntil(ctx, ln, mux, out, also...)
}

func queueName(q string) string {
	if q == "" {
		return broker.DefaultQueue
	}
	return q
}
