package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/gateway/hub"
	"github.com/globalsession/globalsession/gateway/wsproxy"
	"github.com/globalsession/globalsession/internal/admin"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// gatewayParts are what a gateway block builds; close releases them.
type gatewayParts struct {
	addr     string
	tls      *tls.Config // nil: plain HTTP
	sessions *gateway.Sessions
	login    *gateway.Login
	oidc     *gateway.OIDC  // nil without an oidc block
	proxy    *wsproxy.Proxy // nil without session_service
	hub      *hub.Hub
	// broker is the broker block's settings, without Advertise when the block leaves it
	// to the listening address; nil without a broker block. startBroker starts it.
	broker  *broker.BrokerConfig
	poll    time.Duration
	relay   *relay.Client
	closers []func() error
}

// close releases what the parts opened, in reverse order.
func (g *gatewayParts) close() error {
	var first error
	for i := len(g.closers) - 1; i >= 0; i-- {
		if err := g.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newGatewayParts builds the gateway a gateway block describes.
func newGatewayParts(f *config.File, log *slog.Logger) (_ *gatewayParts, err error) {
	g := f.Gateway
	parts := &gatewayParts{addr: config.HostPort(g.Address, g.Port)}
	defer func() {
		if err != nil {
			parts.close()
		}
	}()
	if parts.tls, err = serverTLS(f, g.TLS, "gateway.tls"); err != nil {
		return nil, err
	}
	signer, err := gatewaySigner(f)
	if err != nil {
		return nil, err
	}
	var users *gateway.UsersFile
	if g.UsersFile != "" {
		if users, err = gateway.NewUsersFile(f.Resolve(g.UsersFile)); err != nil {
			return nil, &config.Error{File: f.Name, Field: "gateway.users_file", Msg: err.Error()}
		}
	}
	store, err := gatewayStore(f, parts, log)
	if err != nil {
		return nil, err
	}
	scfg := gateway.SessionsConfig{Store: store, Signer: signer, CookieName: g.CookieName,
		TTL: time.Duration(g.SessionTTL), MaxAge: time.Duration(g.MaxAge), TokenTTL: time.Duration(g.TokenTTL)}
	parts.login = &gateway.Login{Anonymous: g.Anonymous, AllowedOrigins: g.AllowedOrigins, Logger: log}
	if users != nil {
		parts.login.Authenticator = users
		if g.OIDC == nil { // the provider's users are not in the users file
			scfg.Accounts = users
		}
	}
	if parts.sessions, err = gateway.NewSessions(scfg); err != nil {
		return nil, err
	}
	parts.login.Sessions = parts.sessions
	if parts.oidc, err = gatewayOIDC(f, parts.sessions, log); err != nil {
		return nil, err
	}
	if err := gatewayRoutes(g, parts, log); err != nil {
		return nil, err
	}
	return parts, nil
}

// gatewayOIDC makes the single sign-on the oidc block describes; nil without one.
func gatewayOIDC(f *config.File, sessions *gateway.Sessions, log *slog.Logger) (*gateway.OIDC, error) {
	o := f.Gateway.OIDC
	if o == nil {
		return nil, nil
	}
	read := func(field, name string) ([]byte, error) {
		b, err := os.ReadFile(f.Resolve(name))
		if err != nil {
			return nil, &config.Error{File: f.Name, Field: "gateway.oidc." + field, Msg: err.Error()}
		}
		return bytes.TrimSpace(b), nil
	}
	secret, err := read("secret_file", o.SecretFile)
	if err != nil {
		return nil, err
	}
	var clientSecret []byte
	if o.ClientSecretFile != "" {
		if clientSecret, err = read("client_secret_file", o.ClientSecretFile); err != nil {
			return nil, err
		}
	}
	backend := gateway.BackendGatewayJWT
	if o.BackendToken == "access_token" {
		backend = gateway.BackendAccessToken
	}
	oc, err := gateway.NewOIDC(gateway.OIDCConfig{Sessions: sessions, Issuer: o.Issuer, ClientID: o.ClientID,
		ClientSecret: string(clientSecret), Scopes: o.Scopes, RedirectURL: o.RedirectURL,
		PostLogoutRedirectURL: o.PostLogoutRedirectURL, UserClaim: o.UserClaim, RolesClaim: o.RolesClaim, Backend: backend,
		Secret: secret, StateTTL: time.Duration(o.StateTTL), RefreshMargin: time.Duration(o.RefreshMargin),
		AllowedOrigins: f.Gateway.AllowedOrigins, Logger: log})
	if err != nil {
		return nil, &config.Error{File: f.Name, Field: "gateway.oidc", Msg: err.Error()}
	}
	return oc, nil
}

// oidcValid is the hub's per-cycle check of a session's provider tokens: refreshed when
// they are about to expire; a refusal ends the session (and so its channels).
func oidcValid(oc *gateway.OIDC) func(ctx context.Context, s *gateway.Session) error {
	return func(ctx context.Context, s *gateway.Session) error {
		if _, err := oc.Tokens(ctx, s); err != nil && !errors.Is(err, gateway.ErrNoTokens) {
			return err
		}
		return nil // valid, or not a single sign-on session
	}
}

// gatewaySigner makes the JWT signer the jwt block names.
func gatewaySigner(f *config.File) (*gateway.TokenSigner, error) {
	j := f.Gateway.JWT
	issuer := j.Issuer
	if issuer == "" {
		issuer = "global-sessions"
	}
	var signer *gateway.TokenSigner
	var err error
	if j.HS256KeyFile != "" {
		key, rerr := os.ReadFile(f.Resolve(j.HS256KeyFile))
		if rerr != nil {
			return nil, &config.Error{File: f.Name, Field: "gateway.jwt.hs256_key_file", Msg: rerr.Error()}
		}
		signer, err = gateway.NewHS256Signer(key, issuer)
	} else {
		signer, err = gateway.NewES256Signer(f.Resolve(j.ES256KeyFile), issuer)
	}
	if err != nil {
		return nil, &config.Error{File: f.Name, Field: "gateway.jwt", Msg: err.Error()}
	}
	return signer, nil
}

// gatewayStore opens the gateway's session store: the host's table behind the relay the
// message_relay block names (without one, the table alone).
func gatewayStore(f *config.File, parts *gatewayParts, log *slog.Logger) (*sessioncache.Manager, error) {
	g := f.Gateway
	var cache *config.Cache
	create := true
	if g.LRU != nil {
		cache, create = g.LRU.Cache, g.LRU.ManageSection
	}
	table := tableConfig(f, cache, create)
	table.Create = create
	var remotes []sessioncache.Remote
	authPath := ""
	if mr := g.MessageRelay; mr != nil {
		host := mr.Address
		if host == "" {
			host = "127.0.0.1"
		}
		ctls, err := clientTLS(f, mr.TLS, "gateway.message_relay.tls", host)
		if err != nil {
			return nil, err
		}
		c, err := relay.NewClient(relay.ClientConfig{Addr: net.JoinHostPort(host, fmt.Sprint(*mr.Port)), TLS: ctls,
			Secret: mr.Secret, MaxFrame: f.MaxFrame, Logger: log, Name: "gateway"})
		if err != nil {
			return nil, err
		}
		parts.closers = append(parts.closers, c.Close)
		remotes, parts.relay, authPath = append(remotes, c), c, mr.AuthPath
	}
	var concern sessioncache.WriteConcern
	if g.WriteConcern == "durable" {
		concern = sessioncache.WriteDurable
	}
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Table: table, Remotes: remotes, AuthPath: authPath,
		Logger: log, StaleFor: time.Duration(g.StaleFor), WriteConcern: concern})
	if err != nil {
		return nil, err
	}
	parts.closers = append(parts.closers, m.Close)
	return m, nil
}

// gatewayRoutes makes the WebSocket proxy (with a session service), the broker's settings
// (with a broker block) and the push hub.
func gatewayRoutes(g *config.Gateway, parts *gatewayParts, log *slog.Logger) error {
	var err error
	if g.SessionService != "" {
		parts.proxy, err = wsproxy.NewProxy(wsproxy.ProxyConfig{
			Route: wsproxy.SessionRoute(wsproxy.RouteConfig{Sessions: parts.sessions,
				Router: &discovery.RemoteSessions{URL: g.SessionService}, SessionHeader: g.SessionHeader,
				BackendToken: backendToken(parts.oidc)}),
			AllowedOrigins: g.AllowedOrigins,
			Sessions:       parts.sessions,
			Logger:         log,
		})
		if err != nil {
			return err
		}
	}
	if bb := g.Broker; bb != nil {
		parts.broker = &broker.BrokerConfig{Relay: parts.relay, Sessions: parts.sessions, Queue: bb.Queue, AllowAnonymous: bb.AllowAnonymous,
			Instance: bb.Instance, Advertise: bb.Advertise, AllowedOrigins: g.AllowedOrigins,
			RequestTimeout: time.Duration(bb.RequestTimeout), MaxMessageSize: bb.MaxMessageSize, MaxFileSize: bb.MaxFileSize,
			FileTimeout: time.Duration(bb.FileTimeout), MaxFileRequests: bb.MaxFileRequests,
			BackendToken: backendToken(parts.oidc), Logger: log}
		parts.poll = time.Duration(bb.PollInterval)
		if parts.poll == 0 {
			parts.poll = 2 * time.Second
		}
	}
	hcfg := hub.HubConfig{Sessions: parts.sessions, AllowedOrigins: g.AllowedOrigins, Logger: log}
	if parts.oidc != nil {
		hcfg.Validate = oidcValid(parts.oidc)
	}
	parts.hub, err = hub.NewHub(hcfg)
	return err
}

// backendToken is what backends get with single sign-on (nil: the gateway's JWT).
func backendToken(oc *gateway.OIDC) gateway.TokenFunc {
	if oc == nil {
		return nil
	}
	return oc.BackendToken
}

// brokerParts are what startBroker starts; close stops them.
type brokerParts struct {
	broker   *broker.Broker
	assigner *broker.Assigner
	// hubAssigner says which instance's push hub a user's tabs should all use.
	hubAssigner *broker.Assigner
	discovery   *discovery.Service
}

// close stops the discovery of gateway instances. Shut the broker down first.
func (b *brokerParts) close() error { return b.discovery.Close() }

// startBroker starts the broker mode once the gateway listens: the Broker, registered
// with advertise unless the block names its own URL, and the Assigners over a discovery
// of the live gateway instances.
func startBroker(ctx context.Context, g *gatewayParts, advertise string, log *slog.Logger) (*brokerParts, error) {
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
	members := broker.MemberProvider{Relay: g.relay}
	as, err := broker.NewAssigner(broker.AssignerConfig{Sessions: g.sessions, Router: ss, Instances: d, Logger: log,
		Live: members.Live, Refresh: d.Refresh})
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
	hubAs, err := broker.NewAssigner(broker.AssignerConfig{Sessions: g.sessions, Router: hubRouter, Instances: d, Logger: log,
		Live: members.Live, Refresh: d.Refresh,
		ByUser: true, Group: "hub"})
	if err != nil {
		return nil, err
	}
	cfg := *g.broker
	if cfg.Advertise == "" {
		cfg.Advertise = advertise
	}
	b, err := broker.NewBroker(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.Start()
	return &brokerParts{broker: b, assigner: as, hubAssigner: hubAs, discovery: d}, nil
}

// runGateway runs the login endpoints, the WebSocket proxy, the push hub and, with a broker
// block, the broker mode with its assignment endpoints.
func runGateway(ctx context.Context, f *config.File, out io.Writer, log *slog.Logger) (err error) {
	parts, err := newGatewayParts(f, log)
	if err != nil {
		return err
	}
	defer parts.close()
	var stops stopper
	defer func() {
		if serr := stops.stop(); err == nil {
			err = serr
		}
	}()
	var adm *admin.Server
	if err := startAdmin(f, out, log, &stops, func(a *admin.Server) { adm = a; gatewayMetrics(a, parts) }); err != nil {
		return err
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/login", "/login/", "/logout", "/session"} {
		mux.Handle(p, parts.login)
	}
	mux.Handle("/hub", parts.hub)
	if parts.oidc != nil {
		paths := []string{"/login/oidc", "/login/oidc/callback", "/logout/oidc", "/oidc/backchannel-logout"}
		if u, err := url.Parse(f.Gateway.OIDC.RedirectURL); err == nil && !slices.Contains(paths, u.Path) && u.Path != "" {
			paths = append(paths, u.Path) // the callback where the provider sends the browser back
		}
		for _, p := range paths {
			mux.Handle(p, parts.oidc)
		}
	}
	// http.Server.Shutdown leaves hijacked WebSockets alone: the proxy, the hub and the
	// broker close theirs.
	also := []func(context.Context) error{parts.hub.Shutdown}
	if parts.proxy != nil {
		mux.Handle("/app/", parts.proxy)
		also = append(also, parts.proxy.Shutdown)
	}
	ln, err := net.Listen("tcp", parts.addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", parts.addr, err)
	}
	scheme, ws := "http", "ws"
	if parts.tls != nil {
		ln = wsproxy.NewTLSListener(ln, parts.tls)
		scheme, ws = "https", "wss"
	}
	fmt.Fprintf(out, "gateway: serving on %s://%s: %s\n", scheme, ln.Addr(), gatewayEndpoints(f.Gateway, parts))
	if parts.broker != nil {
		bp, err := startBroker(ctx, parts, scheme+"://"+ln.Addr().String(), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer bp.close()
		mux.Handle("/ws/", bp.broker)
		mux.Handle("/v1/assign", bp.assigner)
		mux.Handle("/v1/hub", bp.hubAssigner)
		mux.Handle("/health", bp.broker.Health())
		mux.Handle("/metrics", bp.broker.Metrics())
		also = append(also, bp.broker.Shutdown)
		fmt.Fprintf(out, "gateway: broker instance %s: %s://%s/ws/<group> to queue %q, assignments on %s://%s/v1/assign?group=<group> and (the hub, by user) %s://%s/v1/hub\n",
			bp.broker.Instance(), ws, ln.Addr(), queueName(parts.broker.Queue), scheme, ln.Addr(), scheme, ln.Addr())
	}
	var h http.Handler = mux
	if adm != nil {
		h = adm.InstrumentHTTP("gateway_http", mux)
	}
	return serveUntil(ctx, ln, h, out, also...)
}

// gatewayEndpoints lists, for the banner, the endpoints a gateway serves, with their
// methods.
func gatewayEndpoints(g *config.Gateway, parts *gatewayParts) string {
	var eps []string
	if g.UsersFile != "" {
		eps = append(eps, "POST /login")
	}
	if g.Anonymous {
		eps = append(eps, "POST /login/anonymous")
	}
	if parts.oidc != nil {
		eps = append(eps, "GET /login/oidc (single sign-on)", "GET /login/oidc/callback", "POST /logout/oidc",
			"POST /oidc/backchannel-logout")
	}
	eps = append(eps, "POST /logout", "GET /session", "GET /hub (WebSocket)")
	if parts.proxy != nil {
		eps = append(eps, "GET /app/<document> (WebSocket)")
	}
	return strings.Join(eps, ", ")
}

func queueName(q string) string {
	if q == "" {
		return broker.DefaultQueue
	}
	return q
}
