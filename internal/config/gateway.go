package config

import "github.com/globalsession/globalsession/relay/tlsconfig"

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
	// TokenTTL bounds a backend token's life, e.g. "5m" (the default); never past the
	// session's absolute end.
	TokenTTL Duration `json:"token_ttl"`
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
	// OIDC enables single sign-on through an OpenID Connect provider (/login/oidc).
	OIDC *OIDCBlock `json:"oidc"`
	// AllowedOrigins for WebSocket upgrades (default: the request's own host).
	AllowedOrigins []string `json:"allowed_origins"`
	// SessionHeader names the header telling the backend its session (default X-Session-Id).
	SessionHeader string `json:"session_header"`
	// SessionService is the base URL of the session service (a discovery process) that
	// routes /app/<document> to backends. Required unless a broker block is given.
	SessionService string `json:"session_service"`
	// Broker turns on the broker mode (the original design's message broker): /ws/<group> WebSockets whose messages go to
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

// OIDCBlock configures single sign-on through an OpenID Connect provider
// (gateway.OIDCConfig).
type OIDCBlock struct {
	// Issuer is the provider's issuer URL. Required.
	Issuer string `json:"issuer"`
	// ClientID is the gateway's client id at the provider. Required.
	ClientID string `json:"client_id"`
	// ClientSecretFile holds the client secret (surrounding white space dropped).
	ClientSecretFile string `json:"client_secret_file"`
	// RedirectURL is the callback's absolute URL as registered (…/login/oidc/callback).
	// Required.
	RedirectURL string `json:"redirect_url"`
	// PostLogoutRedirectURL is where the browser goes after a logout (default "/").
	PostLogoutRedirectURL string `json:"post_logout_redirect_url"`
	// Scopes asked for (default openid, profile, email).
	Scopes []string `json:"scopes"`
	// UserClaim names the user (default preferred_username, else sub); RolesClaim holds
	// the roles (default none).
	UserClaim  string `json:"user_claim"`
	RolesClaim string `json:"roles_claim"`
	// BackendToken is what backends get: "gateway_jwt" (the default) or "access_token".
	BackendToken string `json:"backend_token"`
	// SecretFile keys the login state and the tokens' encryption: at least 32 bytes, the
	// same on every gateway. Required.
	SecretFile string `json:"secret_file"`
	// StateTTL bounds a login at the provider (default 10m); RefreshMargin is how long
	// before expiry an access token is refreshed (default 1m).
	StateTTL      Duration `json:"state_ttl"`
	RefreshMargin Duration `json:"refresh_margin"`
}

// BrokerBlock configures the gateway's broker mode.
type BrokerBlock struct {
	// Queue is the worker queue (default "workers").
	Queue string `json:"queue"`
	// AllowAnonymous lets anonymous sessions join groups (default: only named users).
	AllowAnonymous bool `json:"allow_anonymous"`
	// Instance names this gateway instance (default: random).
	Instance string `json:"instance"`
	// Advertise is the base URL clients reach this instance at (default: the address it
	// listens on, http or https).
	Advertise string `json:"advertise"`
	// RequestTimeout bounds one message's handling by a worker (default 30s).
	RequestTimeout Duration `json:"request_timeout"`
	// MaxMessageSize bounds a client's message in bytes (default 65536).
	MaxMessageSize int64 `json:"max_message_size"`
	// MaxFileSize bounds a file a worker serves under /ws/<group>/files/ (default 524288).
	MaxFileSize int `json:"max_file_size"`
	// FileTimeout bounds one file request (default 10s).
	FileTimeout Duration `json:"file_timeout"`
	// MaxFileRequests bounds a session's file requests under way at once (default 4).
	MaxFileRequests int `json:"max_file_requests"`
	// PollInterval is how often /v1/assign's discovery of the gateway instances refreshes
	// the member list and polls their health and load (default 2s).
	PollInterval Duration `json:"poll_interval"`
}
