package config

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/globalsession/globalsession/internal/tlsconfig"
	"github.com/globalsession/globalsession/relay"
)

// serverTLS builds a server TLS config from a block, naming the field on error.
func (f *File) serverTLS(t *tlsconfig.Config, field string) (*tls.Config, error) {
	b := f.tlsBlock(t)
	if b == nil {
		return nil, nil
	}
	c, err := b.Server()
	if err != nil {
		return nil, &Error{File: f.Name, Field: field, Msg: err.Error()}
	}
	return c, nil
}

// ClientTLS builds a client TLS config for dialing host from a block.
func (f *File) ClientTLS(t *tlsconfig.Config, field, host string) (*tls.Config, error) {
	b := f.tlsBlock(t)
	if b == nil {
		return nil, nil
	}
	c, err := b.Client(host)
	if err != nil {
		return nil, &Error{File: f.Name, Field: field, Msg: err.Error()}
	}
	return c, nil
}

func (f *File) serverOptions(t *tlsconfig.Config, field, secret string, log *slog.Logger) (relay.ServerOptions, error) {
	tc, err := f.serverTLS(t, field)
	if err != nil {
		return relay.ServerOptions{}, err
	}
	return relay.ServerOptions{TLS: tc, Secret: secret, MaxFrame: f.MaxFrame, Logger: log}, nil
}

// RelayConfig returns the config of the relay a relay file describes. Its Lower is left
// nil (LowerLater is set): the caller makes it as RelaySibling says.
func (f *File) RelayConfig(log *slog.Logger) (relay.RelayConfig, error) {
	var cfg relay.RelayConfig
	opts, err := f.serverOptions(f.TLS, "tls", f.Secret, log)
	if err != nil {
		return cfg, err
	}
	pt := f.PathTypes[f.authPath()]
	tc, err := f.TableConfig(pt.Cache, "path_types."+f.authPath()+".cache", true)
	if err != nil {
		return cfg, err
	}
	tc.Create = true // the relay is the table's initializer whatever the block says
	cfg = relay.RelayConfig{
		Addr:          addr(f.Address, f.Port),
		ServerOptions: opts,
		AuthPath:      f.authPath(),
		Table:         tc,
		NoFanOut:      f.FanOut != nil && !*f.FanOut,
		LowerLater:    true,
		TombstoneTTL:  time.Duration(f.TombstoneTTL),
		StreamBacklog: f.StreamBacklog,
		OutboxDir:     f.resolve(f.OutboxDir),
	}
	return cfg, nil
}

// SiblingPlan says how a relay reaches its sibling: as a child process running Command,
// or in process with Config.
type SiblingPlan struct {
	Command   []string
	StopChild bool
	Config    *relay.SiblingConfig
}

// RelaySibling returns the plan for a relay file's sibling: the child process that
// relay.proc_name names, or else an in-process sibling on the sibling block's address
// (by default the relay's address, port + 2, as in the seed's examples).
func (f *File) RelaySibling(rc relay.RelayConfig, log *slog.Logger) (SiblingPlan, error) {
	pt := f.PathTypes[f.authPath()]
	if pt.Relay != nil && len(pt.Relay.ProcName) > 0 {
		stop := true
		if pt.Cache != nil && pt.Cache.StopChild != nil {
			stop = *pt.Cache.StopChild
		}
		return SiblingPlan{Command: pt.Relay.ProcName, StopChild: stop}, nil
	}
	if pt.Relay != nil {
		return SiblingPlan{}, &Error{File: f.Name, Field: "path_types." + f.authPath() + ".relay.proc_name", Msg: "empty"}
	}
	host, port, err := net.SplitHostPort(rc.Addr)
	if err != nil {
		return SiblingPlan{}, &Error{File: f.Name, Field: "address", Msg: err.Error()}
	}
	p, _ := strconv.Atoi(port)
	sib := Endpoint{Address: host}
	if p != 0 {
		p += 2
	}
	sib.Port = &p
	if f.Sibling != nil {
		if f.Sibling.Address != "" {
			sib.Address = f.Sibling.Address
		}
		if f.Sibling.Port != nil {
			sib.Port = f.Sibling.Port
		}
		sib.TLS, sib.Secret = f.Sibling.TLS, f.Sibling.Secret
	}
	opts, err := f.serverOptions(sib.TLS, "sibling.tls", sib.Secret, log)
	if err != nil {
		return SiblingPlan{}, err
	}
	table := rc.Table
	table.Create = false
	table.OnEvict = nil
	return SiblingPlan{Config: &relay.SiblingConfig{
		Addr:          addr(sib.Address, sib.Port),
		ServerOptions: opts,
		AuthPath:      rc.AuthPath,
		Table:         &table,
		Replicas:      f.Replicas,
		Members:       f.ReliefMembers,
		HintDir:       f.resolve(f.HintDir),
	}}, nil
}

// SiblingConfig returns the config of the sibling a half_edge file describes.
func (f *File) SiblingConfig(log *slog.Logger) (relay.SiblingConfig, error) {
	var cfg relay.SiblingConfig
	opts, err := f.serverOptions(f.TLS, "tls", f.Secret, log)
	if err != nil {
		return cfg, err
	}
	cfg = relay.SiblingConfig{Addr: addr(f.Address, f.Port), ServerOptions: opts, AuthPath: f.authPath(), Replicas: f.Replicas,
		Members: f.ReliefMembers, HintDir: f.resolve(f.HintDir)}
	if f.Cache != nil {
		tc, err := f.TableConfig(f.Cache, "cache", false)
		if err != nil {
			return cfg, err
		}
		if tc.Create {
			return cfg, &Error{File: f.Name, Field: "cache.am_initializer", Msg: "a sibling attaches to its relay's table; it must be false"}
		}
		cfg.Table = &tc
	}
	return cfg, nil
}

// String describes a plan for logs.
func (p SiblingPlan) String() string {
	if p.Command != nil {
		return fmt.Sprintf("child process %q", p.Command)
	}
	return "in process on " + p.Config.Addr
}
