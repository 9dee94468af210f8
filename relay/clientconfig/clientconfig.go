// Package clientconfig opens a front end's sessioncache.Manager from the configuration the
// original design gives a front end: an lru block (the host's shared-memory table, created
// by the process with manage_section true and attached to by the others) and a my_messages
// block (the relay to use, with its tls block), as JSON with // comments:
//
//	{
//	    "lru" : { "manage_section" : true, "cache" : { "seed" : 9849381 } },
//	    "my_messages" : { "auth_path" : "auths", "address" : "localhost", "port" : 7878 }
//	}
//
// It is the Go form of the design's new SessionCacheManager(conf.lru, conf.my_messages).
// It is not a server configuration: the global-sessions binary reads those.
package clientconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/internal/tablecfg"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// FrontEnd is a front end's Manager with the relay client it opened; Close closes both.
type FrontEnd struct {
	*sessioncache.Manager
	Relay *relay.Client
}

// Close closes the Manager and then its relay client.
func (f *FrontEnd) Close() error {
	return errors.Join(f.Manager.Close(), f.Relay.Close())
}

// Load reads the front end's config file at path and opens its Manager; relative paths in
// the file are resolved against its directory.
func Load(ctx context.Context, path string, log *slog.Logger) (*FrontEnd, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return open(ctx, f, log)
}

// Parse is Load from bytes; name names them in errors and dir resolves relative paths.
func Parse(ctx context.Context, b []byte, name, dir string, log *slog.Logger) (*FrontEnd, error) {
	f, err := config.Parse(b, name, dir)
	if err != nil {
		return nil, err
	}
	return open(ctx, f, log)
}

func open(ctx context.Context, f *config.File, log *slog.Logger) (*FrontEnd, error) {
	if f.Role() != config.RoleFrontEnd {
		return nil, &config.Error{File: f.Name, Msg: fmt.Sprintf("a front end's file has an lru and a my_messages block; this one is a %s's", f.Role())}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mm := f.MyMessages
	host := mm.Address
	if host == "" {
		host = "127.0.0.1"
	}
	cc := relay.ClientConfig{Addr: net.JoinHostPort(host, strconv.Itoa(*mm.Port)), Secret: mm.Secret, MaxFrame: f.MaxFrame, Logger: log}
	if t := f.TLSBlock(mm.TLS); t != nil {
		var err error
		if cc.TLS, err = t.Client(host); err != nil {
			return nil, &config.Error{File: f.Name, Field: "my_messages.tls", Msg: err.Error()}
		}
	}
	c, err := relay.NewClient(cc)
	if err != nil {
		return nil, err
	}
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Table: table(f), Remotes: []sessioncache.Remote{c},
		AuthPath: mm.AuthPath, Logger: log})
	if err != nil {
		c.Close()
		return nil, err
	}
	return &FrontEnd{Manager: m, Relay: c}, nil
}

// table is the lru block's table: created with manage_section true, attached to otherwise;
// named by token_path and seed as the servers name theirs.
func table(f *config.File) sessioncache.Config {
	if f.LRU == nil {
		return sessioncache.Config{}
	}
	tc := tablecfg.Of(f, f.LRU.Cache, f.LRU.ManageSection)
	tc.Create = f.LRU.ManageSection
	return tc
}
