package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/internal/config"
)

// discoveryConfig is the discovery service's config and its session service's (without
// Source) that a discovery file describes.
func discoveryConfig(f *config.File, log *slog.Logger) (discovery.Config, discovery.SessionConfig, error) {
	d := f.Discovery
	p, err := discoveryProvider(f)
	if err != nil {
		return discovery.Config{}, discovery.SessionConfig{}, err
	}
	cfg := discovery.Config{Provider: p, RefreshInterval: time.Duration(d.RefreshInterval), PollInterval: time.Duration(d.PollInterval),
		Timeout: time.Duration(d.Timeout), HealthPath: d.HealthPath, MetricsPath: d.MetricsPath, Metrics: d.Metrics, Logger: log}
	scfg := discovery.SessionConfig{Metric: d.LoadMetric, NotSticky: d.NotSticky}
	if p := d.Prepare; p != nil {
		scfg.Preparer = &discovery.HTTPPreparer{Path: p.Path, TTL: time.Duration(p.TTL), Timeout: time.Duration(p.Timeout)}
	}
	return cfg, scfg, nil
}

// discoveryProvider makes the one provider the discovery block names.
func discoveryProvider(f *config.File) (discovery.Provider, error) {
	d := f.Discovery
	bad := func(field string, err error) error {
		return &config.Error{File: f.Name, Field: "discovery." + field, Msg: err.Error()}
	}
	switch {
	case d.Static != nil:
		targets := make(discovery.Static, len(d.Static))
		for i, t := range d.Static {
			targets[i] = discovery.Target{ID: t.ID, Addr: t.Addr, Labels: t.Labels}
		}
		return targets, nil
	case d.DNS != nil:
		p, err := discovery.NewDNS(discovery.DNSConfig{Name: d.DNS.Name, Mode: d.DNS.Mode, Port: d.DNS.Port, Server: d.DNS.Server})
		if err != nil {
			return nil, bad("dns", err)
		}
		return p, nil
	case d.Kubernetes != nil:
		k := d.Kubernetes
		p, err := discovery.NewKubernetes(discovery.KubernetesConfig{APIServer: k.APIServer, Namespace: k.Namespace,
			Selector: k.Selector, PortName: k.PortName, TokenFile: f.Resolve(k.TokenFile), CAFile: f.Resolve(k.CAFile)})
		if err != nil {
			return nil, bad("kubernetes", err)
		}
		return p, nil
	default:
		return discovery.NewFile(f.Resolve(d.File)), nil
	}
}

// runDiscovery runs a discovery service and its session service over HTTP.
func runDiscovery(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) error {
	dcfg, scfg, err := discoveryConfig(f, log)
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
	addr := config.HostPort(f.Discovery.Address, f.Discovery.Port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("discovery: listen %s: %w", addr, err)
	}
	d.Refresh(ctx) // serve a first list from the start
	d.Start()
	fmt.Fprintf(out, "discovery: serving the discovery API, the session service and a status page on http://%s/\n", ln.Addr())
	return serveUntil(ctx, ln, discovery.Handler(d, sessions), out)
}
