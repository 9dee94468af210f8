package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/internal/tlsconfig"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// tableConfig turns a cache block of f into a table config; create is what am_initializer
// means when the block does not say. A token_path names the section as ftok names a
// System V segment (see sectionPath); a path names the file itself.
func tableConfig(f *config.File, c *config.Cache, create bool) sessioncache.Config {
	if c == nil {
		return sessioncache.Config{Create: create}
	}
	if c.AmInitializer != nil {
		create = *c.AmInitializer
	}
	tc := sessioncache.Config{Path: f.Resolve(c.Path), Create: create, Replace: c.Replace,
		ElementCount: c.ElCount, RecordSize: c.RecordSize, MaxKeySize: c.MaxKeySize, Seed: c.Seed}
	if tc.Path == "" && c.TokenPath != "" {
		tc.Path = sectionPath(f.Resolve(c.TokenPath), c.Seed)
	}
	return tc
}

// sectionPath names the shared-memory section for a token path and seed, as ftok does for
// System V segments: every process giving the same token and seed gets the same section.
func sectionPath(token string, seed uint64) string {
	return filepath.Join(sessioncache.DefaultDir, fmt.Sprintf("globalsession-%016x-%d.table", xxhash.Sum64String(token), seed))
}

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
	return relay.ServerOptions{TLS: tc, Secret: secret, MaxFrame: f.MaxFrame, Logger: log}, nil
}
