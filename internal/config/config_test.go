package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func TestSeedExamplesLoad(t *testing.T) {
	dir := "/etc/gs"
	r, err := Parse([]byte(seedRelay), "relay.conf", dir)
	require.NoError(t, err)
	assert.Equal(t, RoleRelay, r.Role())
	assert.Equal(t, 7878, *r.Port)
	assert.Equal(t, []string{"global-sessions", "./sibling.conf"}, r.PathTypes["auths"].Relay.ProcName)
	assert.Equal(t, filepath.Join(dir, "keys/ec_key.pem"), r.tlsBlock(r.TLS).ServerKey)

	s, err := Parse([]byte(seedSibling), "sibling.conf", dir)
	require.NoError(t, err)
	assert.Equal(t, RoleSibling, s.Role())
	tc, err := s.TableConfig(s.Cache, "cache", false)
	require.NoError(t, err)
	assert.False(t, tc.Create)
	rc, err := r.TableConfig(r.PathTypes["auths"].Cache, "cache", true)
	require.NoError(t, err)
	assert.Equal(t, rc.Path, tc.Path, "relay and sibling name the same section")
	assert.Equal(t, 20000, tc.ElementCount)
	assert.Equal(t, uint64(9849381), tc.Seed)

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
  "address": "http://not-a-comment//here", // the // inside the string stays
  "auth_path": "a\"//b"
}`), "c.conf", "")
	require.NoError(t, err)
	assert.Equal(t, "http://not-a-comment//here", f.Address)
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
	f, err := Parse([]byte(`{"half_edge": true, "port": 1, "cache": {"am_initializer": true}}`), "x.conf", "")
	require.NoError(t, err)
	_, err = f.SiblingConfig(nil)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "cache.am_initializer"))
}
