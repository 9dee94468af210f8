package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
)

// reliefConfig is the config of the relief server a relief file describes: its lru block
// (its own table), message_relay (the sibling to connect to) and relief block (kind, id,
// store). A store other than memory is opened here; the caller closes it with the server.
func reliefConfig(ctx context.Context, f *config.File, log *slog.Logger) (relief.Config, error) {
	rb := f.Relief
	if rb == nil {
		rb = &config.Relief{}
	}
	kind, id := rb.Kind, rb.ID
	if kind == "" {
		kind = relief.Expansion
	}
	if id == "" {
		host, _ := os.Hostname()
		id = host + "-" + kind
		log.Info("relief: the config names no id; using the host name and kind", "file", f.Name, "id", id, "kind", kind)
	}
	mr := f.MessageRelay
	host := mr.Address
	if host == "" {
		host = "127.0.0.1"
	}
	ctls, err := clientTLS(f, mr.TLS, "message_relay.tls", host)
	if err != nil {
		return relief.Config{}, err
	}
	cfg := relief.Config{
		Kind:         kind,
		ID:           id,
		Sibling:      relay.ClientConfig{Addr: net.JoinHostPort(host, fmt.Sprint(*mr.Port)), TLS: ctls, Secret: mr.Secret, MaxFrame: f.MaxFrame},
		AuthPath:     mr.AuthPath,
		MaxLife:      time.Duration(rb.MaxLife),
		Logger:       log,
		TombstoneTTL: time.Duration(f.TombstoneTTL),
	}
	return cfg, reliefStore(ctx, f, rb, &cfg, log)
}

// reliefStore opens the store the relief block names in cfg: a durable log, Redis, or else
// the memory store's table.
func reliefStore(ctx context.Context, f *config.File, rb *config.Relief, cfg *relief.Config, log *slog.Logger) error {
	switch {
	case rb.Log != nil:
		lc := relief.LogConfig{Path: f.Resolve(rb.Log.Path), SyncEvery: time.Duration(rb.Log.SyncEvery),
			KeepExpiredFor: time.Duration(rb.Log.KeepExpiredFor), Logger: log}
		switch rb.Log.Sync {
		case "always":
			lc.Sync = relief.SyncAlways
		case "never":
			lc.Sync = relief.SyncNever
		}
		s, err := relief.OpenLog(lc)
		if err != nil {
			return &config.Error{File: f.Name, Field: "relief.log", Msg: err.Error()}
		}
		cfg.Store = s
	case rb.Redis != nil:
		s, err := relief.NewRedisStore(ctx, relief.RedisConfig{Addrs: rb.Redis.Addrs, Password: rb.Redis.Password, Prefix: rb.Redis.Prefix,
			KeepExpiredFor: time.Duration(rb.Redis.KeepExpiredFor)})
		if err != nil {
			return &config.Error{File: f.Name, Field: "relief.redis", Msg: err.Error()}
		}
		cfg.Store = s
	default:
		var c *config.Cache
		if f.LRU != nil {
			c = f.LRU.Cache
		}
		tc := tableConfig(f, c, true)
		if tc.Path == "" {
			// Relief servers on one box must not share a section: name it by kind and id.
			tc.Path = sectionPath("relief-"+cfg.Kind+"-"+cfg.ID, tc.Seed)
		}
		cfg.Memory = tc
	}
	return nil
}

// startRelief starts the relief server a relief config describes.
func startRelief(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger, stops *stopper) (*relief.Server, error) {
	rc, err := reliefConfig(ctx, f, log)
	if err != nil {
		return nil, err
	}
	s, err := relief.New(rc)
	if err != nil {
		if rc.Store != nil {
			rc.Store.Close()
		}
		return nil, err
	}
	*stops = append(*stops, func(context.Context) error { return s.Close() })
	if err := s.Start(ctx, nil); err != nil {
		return nil, err
	}
	state := "subscribed to"
	if !s.Client().Connected() {
		state = "waiting for"
	}
	fmt.Fprintf(out, "relief: %s server %q %s the sibling at %s\n", s.Kind(), s.ID(), state, rc.Sibling.Addr)
	return s, nil
}
