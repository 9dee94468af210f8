package config

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
)

// ReliefConfig returns the config of the relief server a relief file describes: the
// seed's lru block (its own table, manage_section), message_relay (the sibling to connect
// to) and this project's relief block (kind, id, store). A store other than memory is
// opened here; the caller closes it with the server.
func (f *File) ReliefConfig(ctx context.Context, log *slog.Logger) (relief.Config, error) {
	var cfg relief.Config
	rb := f.Relief
	if rb == nil {
		rb = &Relief{}
	}
	kind := rb.Kind
	if kind == "" {
		kind = relief.Expansion
	}
	if kind != relief.Expansion && kind != relief.Aging {
		return cfg, &Error{File: f.Name, Field: "relief.kind", Msg: fmt.Sprintf("%q is neither %q nor %q", kind, relief.Expansion, relief.Aging)}
	}
	id := rb.ID
	if id == "" {
		host, _ := os.Hostname()
		id = host + "-" + kind
	}
	mr := f.MessageRelay
	if mr == nil {
		return cfg, &Error{File: f.Name, Field: "message_relay", Msg: "required: the sibling to connect to"}
	}
	if mr.Port == nil {
		return cfg, &Error{File: f.Name, Field: "message_relay.port", Msg: "required"}
	}
	host := mr.Address
	if host == "" {
		host = "127.0.0.1"
	}
	ctls, err := f.ClientTLS(mr.TLS, "message_relay.tls", host)
	if err != nil {
		return cfg, err
	}
	cfg = relief.Config{
		Kind:     kind,
		ID:       id,
		Sibling:  relay.ClientConfig{Addr: net.JoinHostPort(host, fmt.Sprint(*mr.Port)), TLS: ctls, Secret: mr.Secret, MaxFrame: f.MaxFrame},
		AuthPath: mr.AuthPath,
		MaxLife:  time.Duration(rb.MaxLife),
		Logger:   log,
		// The relay file's tombstone_ttl, when this server runs in its process; else its own.
		TombstoneTTL: time.Duration(f.TombstoneTTL),
	}
	switch {
	case rb.Log != nil && rb.Redis != nil:
		return cfg, &Error{File: f.Name, Field: "relief", Msg: "log and redis are both set; choose one store"}
	case rb.Log != nil:
		lc := relief.LogConfig{Path: f.resolve(rb.Log.Path), SyncEvery: time.Duration(rb.Log.SyncEvery), Logger: log}
		if lc.Path == "" {
			return cfg, &Error{File: f.Name, Field: "relief.log.path", Msg: "required"}
		}
		switch rb.Log.Sync {
		case "", "interval":
			lc.Sync = relief.SyncInterval
		case "always":
			lc.Sync = relief.SyncAlways
		case "never":
			lc.Sync = relief.SyncNever
		default:
			return cfg, &Error{File: f.Name, Field: "relief.log.sync", Msg: fmt.Sprintf("%q is not interval, always or never", rb.Log.Sync)}
		}
		s, err := relief.OpenLog(lc)
		if err != nil {
			return cfg, &Error{File: f.Name, Field: "relief.log", Msg: err.Error()}
		}
		cfg.Store = s
	case rb.Redis != nil:
		s, err := relief.NewRedisStore(ctx, relief.RedisConfig{Addrs: rb.Redis.Addrs, Password: rb.Redis.Password, Prefix: rb.Redis.Prefix})
		if err != nil {
			return cfg, &Error{File: f.Name, Field: "relief.redis", Msg: err.Error()}
		}
		cfg.Store = s
	default:
		var c *Cache
		if f.LRU != nil {
			c = f.LRU.Cache
		}
		tc, err := f.TableConfig(c, "lru.cache", true)
		if err != nil {
			return cfg, err
		}
		if tc.Path == "" {
			// Relief servers on one box must not share a section: name it by kind and id.
			tc.Path = SectionPath("relief-"+kind+"-"+id, tc.Seed)
		}
		cfg.Memory = tc
	}
	return cfg, nil
}
