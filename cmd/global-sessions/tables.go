package main

import (
	"crypto/tls"
	"log/slog"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/internal/tablecfg"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relay/tlsconfig"
	"github.com/globalsession/globalsession/sessioncache"
)

// tableConfig turns a cache block of f into a table config (see tablecfg.Of).
func tableConfig(f *config.File, c *config.Cache, create bool) sessioncache.Config {
	return tablecfg.Of(f, c, create)
}

// sectionPath names the shared-memory section for a token path and seed (see
// tablecfg.SectionPath).
func sectionPath(token string, seed uint64) string { return tablecfg.SectionPath(token, seed) }

// serverTLS builds a server TLS config from a block of f, naming the field on error; nil
// when the block turns nothing on.
func serverTLS(f *config.File, t *tlsconfig.Config, field string) (*tls.Config, error) {
	b := f.TLSBlock(t)
	if b == nil {
		return nil, nil
	}
	c, err := b.Server()
	if err != nil {
		return nil, &config.Error{File: f.Name, Field: field, Msg: err.Error()}
	}
	return c, nil
}

// clientTLS builds a client TLS config for dialing host from a block of f.
func clientTLS(f *config.File, t *tlsconfig.Config, field, host string) (*tls.Config, error) {
	b := f.TLSBlock(t)
	if b == nil {
		return nil, nil
	}
	c, err := b.Client(host)
	if err != nil {
		return nil, &config.Error{File: f.Name, Field: field, Msg: err.Error()}
	}
	return c, nil
}

// serverOptions are a relay protocol server's options from a TLS block and a secret of f.
func serverOptions(f *config.File, t *tlsconfig.Config, field, secret string, log *slog.Logger) (relay.ServerOptions, error) {
	tc, err := serverTLS(f, t, field)
	if err != nil {
		return relay.ServerOptions{}, err
	}
	return relay.ServerOptions{TLS: tc, Secret: secret, MaxFrame: f.MaxFrame, MaxConns: f.MaxConns, FrameBudget: f.FrameBudget,
		Logger: log}, nil
}
