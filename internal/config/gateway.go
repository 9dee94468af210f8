package config

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
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
	// SessionService is the base URL of the session service (a discovery process).
	SessionService string `json:"session_service"`
	// LRU is the host's session table; MessageRelay the relay behind it.
	LRU          *LRU      `json:"lru"`
	MessageRelay *Endpoint `json:"message_relay"`
}

// GatewayParts are what a gateway block builds; Close releases them.
type GatewayParts struct {
	Addr     string
	TLS      *tls.Config // nil: plain HTTP
	Sessions *gateway.Sessions
	Login    *gateway.Login
	Proxy    *gateway.Proxy
	Hub      *gateway.Hub
	closers  []func() error
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
	if g.SessionService == "" {
		return nil, bad("session_service", "required: the URL of the session service")
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
	}
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Table: table, Remotes: remotes, AuthPath: authPathOf(g.MessageRelay), Logger: log})
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
	parts.Proxy, err = gateway.NewProxy(gateway.ProxyConfig{
		Route: gateway.SessionRoute(gateway.RouteConfig{Sessions: parts.Sessions,
			Router: &discovery.RemoteSessions{URL: g.SessionService}, SessionHeader: g.SessionHeader}),
		AllowedOrigins: g.AllowedOrigins,
		Logger:         log,
	})
	if err != nil {
		return fail(err)
	}
	parts.Hub, err = gateway.NewHub(gateway.HubConfig{Sessions: parts.Sessions, AllowedOrigins: g.AllowedOrigins, Logger: log})
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
