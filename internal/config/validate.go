package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Relief server kinds, as the relief block's kind names them.
const (
	KindExpansion = "expansion"
	KindAging     = "aging"
)

// checkRole makes every check of the file's role that needs nothing started: whatever the
// binary would refuse later is refused here, before anything is created.
func (f *File) checkRole() error {
	if err := f.checkAddress("address", f.Address); err != nil {
		return err
	}
	if a := f.Admin; a != nil {
		if a.Port == nil || *a.Port < 0 || *a.Port > 65535 {
			return f.bad("admin.port", "required: a TCP port (0 picks a free one)")
		}
		if err := f.checkAddress("admin.address", a.Address); err != nil {
			return err
		}
	}
	switch f.Role() {
	case RoleRelay:
		return f.checkRelay()
	case RoleSibling:
		return f.checkSibling()
	case RoleDiscovery:
		return f.checkDiscovery()
	case RoleGateway:
		return f.checkGateway()
	case RoleFrontEnd:
		if err := f.checkEndpoint(f.MyMessages, "my_messages"); err != nil {
			return err
		}
		if f.LRU != nil {
			return f.checkCache(f.LRU.Cache, "lru.cache")
		}
		return nil
	default:
		return f.checkRelief()
	}
}

func (f *File) bad(field, format string, args ...any) error {
	return &Error{File: f.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkAddress refuses an address that is neither empty, an IP address nor a host name.
func (f *File) checkAddress(field, address string) error {
	a := strings.Trim(address, "[]")
	if a == "" || net.ParseIP(a) != nil || validHostName(a) {
		return nil
	}
	return f.bad(field, "%q is not an IP address or a host name (empty means every interface)", address)
}

// validHostName reports whether name is a host name: dot-separated labels of letters,
// digits, hyphens and underscores.
func validHostName(name string) bool {
	if len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkCache refuses negative sizes in a cache block.
func (f *File) checkCache(c *Cache, field string) error {
	if c != nil && (c.ElCount < 0 || c.RecordSize < 0 || c.MaxKeySize < 0) {
		return f.bad(field, "el_count, record_size and max_key_size must not be negative")
	}
	return nil
}

// checkEndpoint checks a block the file connects to: a port is required.
func (f *File) checkEndpoint(e *Endpoint, field string) error {
	if e.Port == nil {
		return f.bad(field+".port", "required")
	}
	if *e.Port < 1 || *e.Port > 65535 {
		return f.bad(field+".port", "%d is not a TCP port", *e.Port)
	}
	return f.checkAddress(field+".address", e.Address)
}

func (f *File) checkRelay() error {
	auth := f.AuthPathOrDefault()
	if err := f.checkCache(f.PathTypes[auth].Cache, "path_types."+auth+".cache"); err != nil {
		return err
	}
	if f.Sibling != nil {
		if err := f.checkAddress("sibling.address", f.Sibling.Address); err != nil {
			return err
		}
	}
	for i, r := range f.ReliefServers {
		if err := r.checkRole(); err != nil {
			return fmt.Errorf("relief_servers[%d]: %w", i, err)
		}
	}
	return nil
}

func (f *File) checkSibling() error {
	if err := f.checkCache(f.Cache, "cache"); err != nil {
		return err
	}
	if f.Cache != nil && f.Cache.AmInitializer != nil && *f.Cache.AmInitializer {
		return f.bad("cache.am_initializer", "a sibling attaches to its relay's table; it must be false")
	}
	return nil
}

func (f *File) checkRelief() error {
	rb := f.Relief
	if rb == nil {
		rb = &Relief{}
	}
	if rb.Kind != "" && rb.Kind != KindExpansion && rb.Kind != KindAging {
		return f.bad("relief.kind", "%q is neither %q nor %q", rb.Kind, KindExpansion, KindAging)
	}
	// A relief server of a relay's process may leave its sibling to the relay.
	if f.MessageRelay != nil && (!f.inRelay || f.MessageRelay.Port != nil) {
		if err := f.checkEndpoint(f.MessageRelay, "message_relay"); err != nil {
			return err
		}
	}
	switch {
	case rb.Log != nil && rb.Redis != nil:
		return f.bad("relief", "log and redis are both set; choose one store")
	case rb.Log != nil:
		if rb.Log.Path == "" {
			return f.bad("relief.log.path", "required")
		}
		switch rb.Log.Sync {
		case "", "interval", "always", "never":
		default:
			return f.bad("relief.log.sync", "%q is not interval, always or never", rb.Log.Sync)
		}
	case rb.Redis != nil:
		if len(rb.Redis.Addrs) == 0 {
			return f.bad("relief.redis.addrs", "required: one address, or several for a Redis Cluster")
		}
	}
	if f.LRU != nil {
		return f.checkCache(f.LRU.Cache, "lru.cache")
	}
	return nil
}

func (f *File) checkDiscovery() error {
	d := f.Discovery
	n := 0
	for _, given := range []bool{d.Static != nil, d.DNS != nil, d.Kubernetes != nil, d.File != ""} {
		if given {
			n++
		}
	}
	if n != 1 {
		return f.bad("discovery", "give exactly one provider (static, dns, kubernetes or file), not %d", n)
	}
	if d.Port == nil {
		return f.bad("discovery.port", "required")
	}
	if p := d.Prepare; p != nil {
		switch {
		case p.Path != "" && !strings.HasPrefix(p.Path, "/"):
			return f.bad("discovery.prepare.path", "must start with /, not %q", p.Path)
		case p.TTL != 0 && time.Duration(p.TTL) < time.Second:
			return f.bad("discovery.prepare.ttl", "at least 1s, not %v", time.Duration(p.TTL))
		case p.Timeout < 0:
			return f.bad("discovery.prepare.timeout", "must not be negative")
		}
	}
	return f.checkAddress("discovery.address", d.Address)
}

func (f *File) checkGateway() error {
	g := f.Gateway
	if g.Port == nil {
		return f.bad("gateway.port", "required")
	}
	if err := f.checkAddress("gateway.address", g.Address); err != nil {
		return err
	}
	if g.SessionService == "" && g.Broker == nil {
		return f.bad("gateway.session_service", "required (the URL of the session service) unless a broker block is given")
	}
	if g.MessageRelay != nil {
		if err := f.checkEndpoint(g.MessageRelay, "gateway.message_relay"); err != nil {
			return err
		}
	}
	if err := f.checkBroker(); err != nil {
		return err
	}
	if err := f.checkOIDC(); err != nil {
		return err
	}
	switch {
	case g.JWT.HS256KeyFile != "" && g.JWT.ES256KeyFile != "":
		return f.bad("gateway.jwt", "give hs256_key_file or es256_key_file, not both")
	case g.JWT.HS256KeyFile == "" && g.JWT.ES256KeyFile == "":
		return f.bad("gateway.jwt", "required: hs256_key_file or es256_key_file")
	}
	switch g.WriteConcern {
	case "", "relay", "durable":
	default:
		return f.bad("gateway.write_concern", "%q is neither \"relay\" nor \"durable\"", g.WriteConcern)
	}
	if g.LRU != nil {
		return f.checkCache(g.LRU.Cache, "gateway.lru.cache")
	}
	return nil
}

func (f *File) checkOIDC() error {
	o := f.Gateway.OIDC
	if o == nil {
		return nil
	}
	absolute := func(field, v string) error {
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return f.bad("gateway.oidc."+field, "%q is not an absolute http(s) URL", v)
		}
		return nil
	}
	switch {
	case o.ClientID == "":
		return f.bad("gateway.oidc.client_id", "required: the gateway's client id at the provider")
	case o.SecretFile == "":
		return f.bad("gateway.oidc.secret_file", "required: a file of at least 32 random bytes, the same on every gateway")
	case o.BackendToken != "" && o.BackendToken != "gateway_jwt" && o.BackendToken != "access_token":
		return f.bad("gateway.oidc.backend_token", "%q is neither \"gateway_jwt\" nor \"access_token\"", o.BackendToken)
	case o.StateTTL < 0 || o.RefreshMargin < 0:
		return f.bad("gateway.oidc", "state_ttl and refresh_margin must not be negative")
	}
	if err := absolute("issuer", o.Issuer); err != nil {
		return err
	}
	if err := absolute("redirect_url", o.RedirectURL); err != nil {
		return err
	}
	if o.PostLogoutRedirectURL != "" && !strings.HasPrefix(o.PostLogoutRedirectURL, "/") {
		return absolute("post_logout_redirect_url", o.PostLogoutRedirectURL)
	}
	return nil
}

func (f *File) checkBroker() error {
	g := f.Gateway
	bb := g.Broker
	if bb == nil {
		return nil
	}
	if g.MessageRelay == nil {
		return f.bad("gateway.broker", "needs message_relay: the relay brokers the messages")
	}
	if strings.Contains(bb.Instance, "/") {
		return f.bad("gateway.broker.instance", "%q contains a slash", bb.Instance)
	}
	if bb.Advertise != "" {
		if u, err := url.Parse(bb.Advertise); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return f.bad("gateway.broker.advertise", "%q is not an http(s) URL with a host", bb.Advertise)
		}
	}
	if bb.MaxMessageSize < 0 || bb.RequestTimeout < 0 || bb.PollInterval < 0 || bb.MaxFileSize < 0 || bb.FileTimeout < 0 ||
		bb.MaxFileRequests < 0 {
		return f.bad("gateway.broker", "max_message_size, request_timeout, poll_interval, max_file_size, file_timeout and "+
			"max_file_requests must not be negative")
	}
	return nil
}
