package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/globalsession/globalsession/internal/admin"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
)

// relayConfig is the config of the relay a relay file describes. Its Lower is left nil
// (LowerLater is set): runRelay makes it as relaySibling says.
func relayConfig(f *config.File, log *slog.Logger) (relay.RelayConfig, error) {
	opts, err := serverOptions(f, f.TLS, "tls", f.Secret, log)
	if err != nil {
		return relay.RelayConfig{}, err
	}
	auth := f.AuthPathOrDefault()
	tc := tableConfig(f, f.PathTypes[auth].Cache, true)
	tc.Create = true // the relay is the table's initializer whatever the block says
	return relay.RelayConfig{
		Addr:          config.HostPort(f.Address, f.Port),
		ServerOptions: opts,
		AuthPath:      auth,
		Table:         tc,
		NoFanOut:      f.FanOut != nil && !*f.FanOut,
		LowerLater:    true,
		TombstoneTTL:  time.Duration(f.TombstoneTTL),
		StreamBacklog: f.StreamBacklog,
		OutboxDir:     f.Resolve(f.OutboxDir),
		OutboxLimit:   f.OutboxLimit,
	}, nil
}

// siblingPlan says how a relay reaches its sibling: as a child process running command,
// or in process with config.
type siblingPlan struct {
	command   []string
	stopChild bool
	config    *relay.SiblingConfig
}

// relaySibling is the plan for a relay file's sibling: the child process that the auth
// path's relay.proc_name names, or else an in-process sibling on the sibling block's
// address (by default the relay's address, port + 2, as in the original examples).
func relaySibling(f *config.File, rc relay.RelayConfig, log *slog.Logger) (siblingPlan, error) {
	pt := f.PathTypes[f.AuthPathOrDefault()]
	if pt.Relay != nil && len(pt.Relay.ProcName) > 0 {
		stop := true
		if pt.Cache != nil && pt.Cache.StopChild != nil {
			stop = *pt.Cache.StopChild
		}
		return siblingPlan{command: pt.Relay.ProcName, stopChild: stop}, nil
	}
	host, port, err := net.SplitHostPort(rc.Addr)
	if err != nil {
		return siblingPlan{}, &config.Error{File: f.Name, Field: "address", Msg: err.Error()}
	}
	p, _ := strconv.Atoi(port)
	if p != 0 {
		p += 2
	}
	sib := config.Endpoint{Address: host, Port: &p}
	if f.Sibling != nil {
		if f.Sibling.Address != "" {
			sib.Address = f.Sibling.Address
		}
		if f.Sibling.Port != nil {
			sib.Port = f.Sibling.Port
		}
		sib.TLS, sib.Secret = f.Sibling.TLS, f.Sibling.Secret
	}
	opts, err := serverOptions(f, sib.TLS, "sibling.tls", sib.Secret, log)
	if err != nil {
		return siblingPlan{}, err
	}
	table := rc.Table
	table.Create = false
	table.OnEvict = nil
	return siblingPlan{config: &relay.SiblingConfig{Addr: config.HostPort(sib.Address, sib.Port), ServerOptions: opts,
		AuthPath: rc.AuthPath, Table: &table, Replicas: f.Replicas, Members: f.ReliefMembers, HintDir: f.Resolve(f.HintDir),
		HintLimit: f.HintLimit}}, nil
}

// runRelay runs the relay a relay file describes, its sibling, and the relief servers the
// file lists, until ctx ends.
func runRelay(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) (err error) {
	var stops stopper
	defer func() {
		if serr := stops.stop(); err == nil {
			err = serr
		}
	}()
	rc, err := relayConfig(f, log)
	if err != nil {
		return err
	}
	plan, err := relaySibling(f, rc, log)
	if err != nil {
		return err
	}
	r, err := relay.NewRelay(rc)
	if err != nil {
		return err
	}
	stops = append(stops, r.Shutdown)
	fmt.Fprintf(out, "relay: serving front ends on %s (auth path %q, table %s)\n", r.Addr(), rc.AuthPath, r.Table().Path())
	sib, lowerUp, err := startRelaySibling(f, plan, r, out, log, &stops)
	if err != nil {
		return err
	}
	var reliefs []*relief.Server
	for _, rf := range f.ReliefServers {
		s, err := startRelief(ctx, rf, out, log, &stops)
		if err != nil {
			return err
		}
		reliefs = append(reliefs, s)
	}
	err = startAdmin(f, out, log, &stops, func(a *admin.Server) {
		relayMetrics(a, r, lowerUp)
		if sib != nil {
			siblingMetrics(a, sib)
		}
		for _, s := range reliefs {
			reliefMetrics(a, s)
		}
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}

// startRelaySibling starts the relay's sibling as plan says and makes it the relay's
// lower tier; it returns the in-process sibling (nil for a child) and whether the relay
// reaches its sibling now. The relief servers of the relay's file connect to an
// in-process sibling unless they name another.
func startRelaySibling(f *config.File, plan siblingPlan, r *relay.Relay, out io.Writer, log *slog.Logger, stops *stopper) (*relay.Sibling, func() bool, error) {
	if plan.command != nil {
		child, err := relay.NewChildSibling(relay.ChildConfig{Command: plan.command, Logger: log,
			Client: relay.ClientConfig{MaxFrame: f.MaxFrame}})
		if err != nil {
			return nil, nil, err
		}
		if plan.stopChild {
			*stops = append(*stops, func(context.Context) error { return child.Close() })
		} else {
			*stops = append(*stops, func(context.Context) error { return child.Client.Close() })
		}
		r.SetLower(child)
		fmt.Fprintf(out, "sibling: child process %q\n", plan.command)
		return nil, child.Connected, nil
	}
	s, err := relay.NewSibling(*plan.config)
	if err != nil {
		return nil, nil, err
	}
	*stops = append(*stops, s.Shutdown)
	r.SetLower(s)
	fmt.Fprintf(out, "sibling: serving pressure-relief servers on %s\n", s.Addr())
	host, port, _ := net.SplitHostPort(s.Addr().String())
	for _, rf := range f.ReliefServers {
		if rf.MessageRelay.Port == nil {
			p, _ := strconv.Atoi(port)
			rf.MessageRelay.Address, rf.MessageRelay.Port = host, &p
		}
	}
	return s, func() bool { return true }, nil
}
