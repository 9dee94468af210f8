package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/globalsession/globalsession/internal/admin"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
)

// siblingConfig is the config of the sibling a half_edge file describes.
func siblingConfig(f *config.File, log *slog.Logger) (relay.SiblingConfig, error) {
	opts, err := serverOptions(f, f.TLS, "tls", f.Secret, log)
	if err != nil {
		return relay.SiblingConfig{}, err
	}
	cfg := relay.SiblingConfig{Addr: config.HostPort(f.Address, f.Port), ServerOptions: opts, AuthPath: f.AuthPathOrDefault(),
		Replicas: f.Replicas, Members: f.ReliefMembers, HintDir: f.Resolve(f.HintDir), HintLimit: f.HintLimit}
	if f.Cache != nil {
		tc := tableConfig(f, f.Cache, false)
		cfg.Table = &tc
	}
	return cfg, nil
}

// runSibling runs a sibling endpoint on its own, serving the relay that started it over
// the inherited link when there is one, until ctx ends or that relay is gone (unless its
// cache block says stop_child: false, when it outlives the relay).
func runSibling(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) (err error) {
	sc, err := siblingConfig(f, log)
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
	var stops stopper
	defer func() {
		if serr := stops.stop(); err == nil {
			err = serr
		}
	}()
	if err := startAdmin(f, out, log, &stops, func(a *admin.Server) { siblingMetrics(a, s) }); err != nil {
		return err
	}
	var relayGone <-chan struct{}
	if link != nil {
		relayGone = s.ServeRelayConn(link)
		fmt.Fprintln(out, "sibling: serving its relay over the inherited link")
	}
	if f.Cache != nil && f.Cache.StopChild != nil && !*f.Cache.StopChild {
		relayGone = nil // stop_child false: outlive the relay, serving the relief servers
	}
	select {
	case <-ctx.Done():
	case <-relayGone:
		fmt.Fprintln(out, "sibling: the relay is gone; stopping")
	}
	return nil
}
