package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// The seed's example configurations, as written there.
const seedRelay = `{
 	"edge_supported_relay" : true,
	"auth_path" : "auths",
	"port" : 7878,    // <- set the port with your own number
	"address" : "binding address",
	"tls" : {
        "server_key" : "keys/ec_key.pem",
        "server_cert" : "keys/ec_crt.crt",
        "client_cert" : "keys/cl_ec_crt.crt"
 	 },
    "path_types" : {
        "auths" : {
            "relay" : {
                "proc_name" : ["global-sessions", "./sibling.conf"]
            },
            "cache" : {
                "token_path" : "./ml_relay.conf",
                "am_initializer" : true,
                "seed" : 9849381,
                "record_size" : 384,
                "el_count" : 20000
            }
        } 
    }
}`

const seedSibling = `{
    "half_edge" : true,
    "auth_path" : "auths",
    "port" : 7880,
    "address" : "localhost",
	 "tls" : {
        "server_key" : "keys/ec_key.pem",
        "server_cert" : "keys/ec_crt.crt",
        "client_cert" : "keys/cl_ec_crt.crt"
 	 },
    "cache" : {
        "token_path" : "./ml_relay.conf",
        "am_initializer" : false,
        "seed" : 9849381,
        "record_size" : 384,
        "el_count" : 20000,
        "stop_child" : true
    }
}`

const seedRelief = `{
    "lru" : {
        "manage_section" : true,
        "cache" : {
            "seed" : 9849381
        }
    },
    "message_relay" : {
        "auth_path" : "auths",
        "address" : "localhost",
        "port" : 7880,
	 	 "tls" : {
	        "server_key" : "keys/ec_key.pem",
	        "server_cert" : "keys/ec_crt.crt",
	        "client_cert" : "keys/cl_ec_crt.crt"
	 	 }
    }
}`

// seedRelayFilled is the original relay example with its placeholder address filled in.
var seedRelayFilled = strings.Replace(seedRelay, `"binding address"`, `"127.0.0.1"`, 1)

func TestSeedExamplesLoad(t *testing.T) {
	dir := "/etc/gs"
	_, err := Parse([]byte(seedRelay), "relay.conf", dir)
	require.Error(t, err, "the example's placeholder address is refused before anything is made")
	assert.Contains(t, err.Error(), `address: "binding address" is not an IP address or a host name`)
	r, err := Parse([]byte(seedRelayFilled), "relay.conf", dir)
	require.NoError(t, err)
	assert.Equal(t, RoleRelay, r.Role())
	assert.Equal(t, 7878, *r.Port)
	assert.Equal(t, []string{"global-sessions", "./sibling.conf"}, r.PathTypes["auths"].Relay.ProcName)
	assert.Equal(t, filepath.Join(dir, "keys/ec_key.pem"), r.TLSBlock(r.TLS).ServerKey)

	s, err := Parse([]byte(seedSibling), "sibling.conf", dir)
	require.NoError(t, err)
	assert.Equal(t, RoleSibling, s.Role())
	assert.Equal(t, r.PathTypes["auths"].Cache.TokenPath, s.Cache.TokenPath, "relay and sibling name the same section")
	assert.Equal(t, 20000, s.Cache.ElCount)
	assert.Equal(t, uint64(9849381), s.Cache.Seed)

	f, err := Parse([]byte(seedRelief), "relief.conf", dir)
	require.NoError(t, err)
	assert.Equal(t, RoleRelief, f.Role())
	assert.True(t, f.LRU.ManageSection)
	assert.Equal(t, 7880, *f.MessageRelay.Port)
}

func TestComments(t *testing.T) {
	f, err := Parse([]byte(`// leading comment
{
  "half_edge": true, // trailing comment
  "port": 1,
  "secret": "http://not-a-comment//here", // the // inside the string stays
  "auth_path": "a\"//b"
}`), "c.conf", "")
	require.NoError(t, err)
	assert.Equal(t, "http://not-a-comment//here", f.Secret)
	assert.Equal(t, `a"//b`, f.AuthPath)
}

func TestErrorsNameFileAndField(t *testing.T) {
	tests := []struct{ text, want string }{
		{`{"half_edge": true, "port": 1, "cache": {"el_count": "many"}}`, "cache.el_count"},
		{`{"half_edge": true, "port": 1, "cache": {"colour": 1}}`, `"colour": unknown field`},
		{`{"half_edge": true, "port": 70000}`, "port: 70000 is not a TCP port"},
		{`{"half_edge": true, "port": 1} {}`, "more than one JSON value"},
		{"{\n\n  \"half_edge\": tru\n}", "line 3"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.text), "x.conf", "")
		require.Error(t, err, tt.text)
		assert.Contains(t, err.Error(), "config x.conf")
		assert.Contains(t, err.Error(), tt.want)
	}
	for _, tt := range []struct{ text, want string }{
		{`{"half_edge": true, "port": 1, "cache": {"am_initializer": true}}`, "cache.am_initializer"},
		{`{"lru": {}, "message_relay": {"port": 1}, "relief": {"kind": "old"}}`, "relief.kind"},
		{`{"lru": {}, "message_relay": {"address": "x"}}`, "message_relay.port: required"},
		{`{"lru": {}, "message_relay": {"port": 1}, "relief": {"log": {"path": "l", "sync": "sometimes"}}}`, "relief.log.sync"},
		{`{"discovery": {"port": 1}}`, "exactly one provider"},
		{`{"gateway": {"port": 1, "session_service": "http://x", "jwt": {"hs256_key_file": "k"}, "oidc": {"client_id": "gw", "secret_file": "s", "issuer": "accounts.example.com", "redirect_url": "https://gw/login/oidc/callback"}}}`, "gateway.oidc.issuer: \"accounts.example.com\" is not an absolute"},
		{`{"gateway": {"port": 1, "session_service": "http://x", "jwt": {"hs256_key_file": "k"}, "oidc": {"issuer": "https://idp", "redirect_url": "https://gw/cb", "secret_file": "s"}}}`, "gateway.oidc.client_id: required"},
		{`{"gateway": {"port": 1, "session_service": "http://x", "jwt": {"hs256_key_file": "k"}, "oidc": {"client_id": "gw", "issuer": "https://idp", "redirect_url": "https://gw/cb", "secret_file": "s", "backend_token": "id_token"}}}`, "gateway.oidc.backend_token"},
		{`{"edge_supported_relay": true, "port": 1, "max_conns": -2}`, "max_conns: -1 (no limit)"},
		{`{"edge_supported_relay": true, "port": 1, "frame_budget": -1}`, "frame_budget: negative"},
		{`{"edge_supported_relay": true, "port": 1, "outbox_limit": -1}`, "outbox_limit: negative"},
		{`{"half_edge": true, "port": 1, "hint_limit": -5}`, "hint_limit: negative"},
		{`{"discovery": {"port": 1, "file": "f", "prepare": {"path": "prepare"}}}`, "discovery.prepare.path: must start with /"},
		{`{"discovery": {"port": 1, "file": "f", "prepare": {"ttl": "10ms"}}}`, "discovery.prepare.ttl: at least 1s"},
		{`{"gateway": {"port": 1, "session_service": "http://x", "jwt": {}}}`, "gateway.jwt: required"},
		{`{"gateway": {"port": 1, "broker": {}, "jwt": {"hs256_key_file": "k"}}}`, "gateway.broker: needs message_relay"},
		{`{"edge_supported_relay": true, "port": 1, "relief_servers": [{"relief": {"kind": "x"}}]}`, "relief_servers[0]"},
	} {
		_, err := Parse([]byte(tt.text), "x.conf", "")
		require.Error(t, err, tt.text)
		assert.Contains(t, err.Error(), tt.want, "checked at parse time, before anything is made")
	}
}

func TestTheDefaultAuthPathIsTheLibrarys(t *testing.T) {
	assert.Equal(t, sessioncache.DefaultAuthPath, DefaultAuthPath)
}
