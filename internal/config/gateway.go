package config

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/gateway/hub"
	"github.com/globalsession/globalsession/gateway/wsproxy"
	"github.com/globalsession/globalsession/internal/tlsconfig"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// Gateway is the gateway block: login, sessions in the session tier, and the WebSocket
// proxy routed by a session service.
type Gateway struct {
	Address string `json:"address"`
	Port    *int   `json:"port"`
	// TLS makes the gateway serve HTTPS (server_key, server_cert; cookies are then Secure).
	TLS *tlsconfig.Config `json:"tls"`
	// CookieName, SessionTTL and MaxAge configure the login sessions.
	CookieName string   `json:"cookie_name"`
	SessionTTL Duration `json:"session_ttl"`
	MaxAge     Duration `json:"max_age"`
	// JWT says how the gateway signs the backends' tokens: hs256_key_file (at least 32
	// bytes) or es256_key_file (a PEM P-256 key).
	JWT struct {
		HS256KeyFile string `json:"hs256_key_file"`
		ES256KeyFile string `json:"es256_key_file"`
		Issuer       string `json:"issuer"`
	} `json:"jwt"`
	// UsersFile enables /login with bcrypt hashes; Anonymous enables /login/anonymous.
	UsersFile string `json:"users_file"`
	Anonymous bool   `json:"anonymous"`
	// AllowedOrigins for WebSocket upgrades (default: the request's own host).
	AllowedOrigins []string `json:"allowed_origins"`
	// SessionHeader names the header telling the backend its session (default X-Session-Id).
	SessionHeader string `json:"session_header"`
	// SessionService is the base URL of the session service (a discovery process) that
	// routes /app/<document> to backends. Required unless a broker block is given.
	SessionService string `json:"session_service"`
	// Broker turns on seed 002's broker mode: /ws/<group> WebSockets whose messages go to
	// workers through the message relay, and /v1/assign. Requires message_relay.
	Broker *BrokerBlock `json:"broker"`
	// LRU is the host's session table; MessageRelay the relay behind it.
	LRU          *LRU      `json:"lru"`
	MessageRelay *Endpoint `json:"message_relay"`
	// StaleFor is how long the gateway serves sessions from its table after it lost the
	// relay, e.g. "2s" (the default); "-1s" serves none that it cannot verify.
	StaleFor Duration `json:"stale_for"`
	// WriteConcern is "relay" (the default: a login is acknowledged once the relay holds
	// the session) or "durable" (once the key's aging relief servers hold it).
	WriteConcern string `json:"write_concern"`
}

// BrokerBlock configures the gateway's broker mode.
type BrokerBlock struct {
	// Queue is the worker queue (default "workers").
	Queue string `json:"queue"`
	// Instance names this gateway instance (default: random).
	Instance string `json:"instance"`
	// Advertise is the base URL clients reach this instance at (default: the address it
	// listens on, http or https).
	Advertise string `json:"advertise"`
	// RequestTimeout bounds one message's handling by a worker (default 30s).
	RequestTimeout Duration `json:"request_timeout"`
	// MaxMessageSize bounds a client's message in bytes (default 65536).
	MaxMessageSize int64 `json:"max_message_size"`
	// PollInterval is how often /v1/assign's discovery of the gateway instances refreshes
	// the member list and polls their health and load (default 2s).
	PollInterval Duration `json:"poll_interval"`
}

// GatewayParts are what a gateway block builds; Close releases them.
type GatewayParts struct {
	Addr     string
	TLS      *tls.Config // nil: plain HTTP
	Sessions *gateway.Sessions
	Login    *gateway.Login
	Proxy    *wsproxy.Proxy // nil without session_service
	Hub      *hub.Hub
	// Broker is the broker block's settings, without Advertise when the block leaves it
	// to the listening address; nil without a broker block. StartBroker starts it.
	Broker  *broker.BrokerConfig
	poll    time.Duration
	relay   *relay.Client
	closers []func() error
}

// BrokerParts are what StartBroker starts; Close stops them.
type BrokerParts struct {
	Broker   *broker.Broker
	Assigner *broker.Assigner
	// HubAssigner says which instance's push hub a user's tabs should all use.
	HubAssigner *broker.Assigner
	Discovery   *discovery.Service
}

// Close stops the discovery of gateway instances. Shut the Broker down first.
func (b *BrokerParts) Close() error { return b.Discovery.Close() }

// StartBroker starts the broker mode once the gateway listens: the Broker, registered
// with advertise unless the block names its own URL, and the Assigner over a discovery of
// the live gateway instances.
func (g *GatewayParts) StartBroker(ctx context.Context, advertise string, log *slog.Logger) (*BrokerParts, error) {
	const load = "gateway_broker_clients" // the least loaded instance has the fewest clients
	// Discovery, its session services and the assigners start nothing until d.Start, so
	// only the broker, made last, can leave something to undo.
	d, err := discovery.New(discovery.Config{Provider: broker.MemberProvider{Relay: g.relay},
		RefreshInterval: g.poll, PollInterval: g.poll, Metrics: []string{load}, Logger: log})
	if err != nil {
		return nil, err
	}
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d, Metric: load, URL: broker.BrokerURL})
	if err != nil {
		return nil, err
	}
	as, err := broker.NewAssigner(broker.AssignerConfig{Sessions: g.Sessions, Router: ss, Instances: d})
	if err != nil {
		return nil, err
	}
	// The push hub's channels of a user share one set of loops only on one instance: its
	// assignment is by user.
	hubRouter, err := discovery.NewSessionService(discovery.SessionConfig{Source: d, Metric: load,
		URL: func(in discovery.Instance, _ string) string { return broker.InstanceURL(in, "/hub") }})
	if err != nil {
		return nil, err
	}
	hubAs, err := broker.NewAssigner(broker.AssignerConfig{Sessions: g.Sessions, Router: hubRouter, Instances: d,
		ByUser: true, Group: "hub"})
	if err != nil {
		return nil, err
	}
	cfg := *g.Broker
	if cfg.Advertise == "" {
		cfg.Advertise = advertise
	}
	b, err := broker.NewBroker(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.Start()
	return &BrokerParts{Broker: b, Assigner: as, HubAssigner: hubAs, Discovery: d}, nil
}

// Close releases what GatewayParts opened, in reverse order.
func (g *GatewayParts) Close() error {
	var first error
	for i := len(g.closers) - 1; i >= 0; i-- {
		if err := g.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// GatewayParts builds the gateway a gateway block describes.
func (f *File) GatewayParts(ctx context.Context, log *slog.Logger) (*GatewayParts, error) {
	g := f.Gateway
	field := func(n string) string { return "gateway." + n }
	bad := func(n, msg string) error { return &Error{File: f.Name, Field: field(n), Msg: msg} }
	if g.Port == nil {
		return nil, bad("port", "required")
	}
	if g.SessionService == "" && g.Broker == nil {
		return nil, bad("session_service", "required (the URL of the session service) unless a broker block is given")
	}
	if bb := g.Broker; bb != nil {
		if g.MessageRelay == nil {
			return nil, bad("broker", "needs message_relay: the relay brokers the messages")
		}
		if strings.Contains(bb.Instance, "/") {
			return nil, bad("broker.instance", fmt.Sprintf("%q contains a slash", bb.Instance))
		}
		if bb.Advertise != "" {
			if u, err := url.Parse(bb.Advertise); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, bad("broker.advertise", fmt.Sprintf("%q is not an http(s) URL with a host", bb.Advertise))
			}
		}
		if bb.MaxMessageSize < 0 || bb.RequestTimeout < 0 || bb.PollInterval < 0 {
			return nil, bad("broker", "max_message_size, request_timeout and poll_interval must not be negative")
		}
	}
	parts := &GatewayParts{Addr: addr(g.Address, g.Port)}
	tc, err := f.serverTLS(g.TLS, field("tls"))
	if err != nil {
		return nil, err
	}
	parts.TLS = tc
	fail := func(err error) (*GatewayParts, error) {
		parts.Close()
		return nil, err
	}
	var signer *gateway.TokenSigner
	issuer := g.JWT.Issuer
	if issuer == "" {
		issuer = "global-sessions"
	}
	switch {
	case g.JWT.HS256KeyFile != "" && g.JWT.ES256KeyFile != "":
		return nil, bad("jwt", "give hs256_key_file or es256_key_file, not both")
	case g.JWT.HS256KeyFile != "":
		key, rerr := os.ReadFile(f.resolve(g.JWT.HS256KeyFile))
		if rerr != nil {
			return nil, bad("jwt.hs256_key_file", rerr.Error())
		}
		signer, err = gateway.NewHS256Signer(key, issuer)
	case g.JWT.ES256KeyFile != "":
		signer, err = gateway.NewES256Signer(f.resolve(g.JWT.ES256KeyFile), issuer)
	default:
		return nil, bad("jwt", "required: hs256_key_file or es256_key_file")
	}
	if err != nil {
		return nil, bad("jwt", err.Error())
	}
	var cache *Cache
	create := true
	if g.LRU != nil {
		cache, create = g.LRU.Cache, g.LRU.ManageSection
	}
	table, err := f.TableConfig(cache, field("lru.cache"), create)
	if err != nil {
		return nil, err
	}
	table.Create = create
	var remotes []sessioncache.Remote
	if mr := g.MessageRelay; mr != nil {
		if mr.Port == nil {
			return nil, bad("message_relay.port", "required")
		}
		host := mr.Address
		if host == "" {
			host = "127.0.0.1"
		}
		ctls, err := f.ClientTLS(mr.TLS, field("message_relay.tls"), host)
		if err != nil {
			return nil, err
		}
		c, err := relay.NewClient(relay.ClientConfig{Addr: net.JoinHostPort(host, fmt.Sprint(*mr.Port)), TLS: ctls, Secret: mr.Secret, Logger: log, Name: "gateway"})
		if err != nil {
			return nil, err
		}
		parts.closers = append(parts.closers, c.Close)
		remotes = append(remotes, c)
		parts.relay = c
	}
	var concern sessioncache.WriteConcern
	switch g.WriteConcern {
	case "", "relay":
	case "durable":
		concern = sessioncache.WriteDurable
	default:
		return fail(bad("write_concern", fmt.Sprintf("%q is neither \"relay\" nor \"durable\"", g.WriteConcern)))
	}
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Table: table, Remotes: remotes, AuthPath: authPathOf(g.MessageRelay),
		Logger: log, StaleFor: time.Duration(g.StaleFor), WriteConcern: concern})
	if err != nil {
		return fail(err)
	}
	parts.closers = append(parts.closers, m.Close)
	parts.Sessions, err = gateway.NewSessions(gateway.SessionsConfig{Store: m, Signer: signer, CookieName: g.CookieName,
		TTL: time.Duration(g.SessionTTL), MaxAge: time.Duration(g.MaxAge)})
	if err != nil {
		return fail(err)
	}
	parts.Login = &gateway.Login{Sessions: parts.Sessions, Anonymous: g.Anonymous}
	if g.UsersFile != "" {
		u, err := gateway.NewUsersFile(f.resolve(g.UsersFile))
		if err != nil {
			return fail(bad("users_file", err.Error()))
		}
		parts.Login.Authenticator = u
	}
	if g.SessionService != "" {
		parts.Proxy, err = wsproxy.NewProxy(wsproxy.ProxyConfig{
			Route: wsproxy.SessionRoute(wsproxy.RouteConfig{Sessions: parts.Sessions,
				Router: &discovery.RemoteSessions{URL: g.SessionService}, SessionHeader: g.SessionHeader}),
			AllowedOrigins: g.AllowedOrigins,
			Logger:         log,
		})
		if err != nil {
			return fail(err)
		}
	}
	if bb := g.Broker; bb != nil {
		parts.Broker = &broker.BrokerConfig{Relay: parts.relay, Sessions: parts.Sessions, Queue: bb.Queue,
			Instance: bb.Instance, Advertise: bb.Advertise, AllowedOrigins: g.AllowedOrigins,
			RequestTimeout: time.Duration(bb.RequestTimeout), MaxMessageSize: bb.MaxMessageSize, Logger: log}
		parts.poll = time.Duration(bb.PollInterval)
		if parts.poll == 0 {
			parts.poll = 2 * time.Second
		}
	}
	parts.Hub, err = hub.NewHub(hub.HubConfig{Sessions: parts.Sessions, AllowedOrigins: g.AllowedOrigins, Logger: log})
	if err != nil {
		return fail(err)
	}
	return parts, nil
}

func authPathOf(e *Endpoint) string {
	if e == nil {
		return ""
	}
	return e.AuthPath
}
