package clientconfig_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relay/clientconfig"
	"github.com/globalsession/globalsession/sessioncache"
)

// TestTheOriginalClientConfigOpensAManager: two processes' worth of front ends load the
// original design's client configuration (one creating the host's table with
// manage_section true, one attaching), behind a relay; what one sets the other reads, and
// a logout reaches the relay.
func TestTheOriginalClientConfigOpensAManager(t *testing.T) {
	dir := t.TempDir()
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000}})
	require.NoError(t, err)
	defer r.Close()
	_, port, _ := strings.Cut(r.Addr().String(), ":")
	conf := func(manage bool) string {
		return fmt.Sprintf(`{
    "lru" : {
        "manage_section" : %v,
        "cache" : { "token_path" : "./app.token", "seed" : 9849381, "el_count" : 1000 }
    },
    "my_messages" : {
        "auth_path" : "auths",
        "address" : "127.0.0.1",
        "port" : %s    // <- set the port with your own number
    }
}`, manage, port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := filepath.Join(dir, "front.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf(true)), 0o600))
	creator, err := clientconfig.Load(ctx, path, nil)
	require.NoError(t, err)
	defer creator.Close()
	defer creator.Table().Remove()
	attacher, err := clientconfig.Parse(ctx, []byte(conf(false)), "attach.conf", dir, nil)
	require.NoError(t, err)
	defer attacher.Close()
	assert.Equal(t, creator.Table().Path(), attacher.Table().Path(), "one host, one table")

	require.NoError(t, creator.Set(ctx, []byte("sid-1"), []byte("alice"), time.Minute))
	v, err := attacher.Get(ctx, []byte("sid-1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	e, err := r.Lookup([]byte("sid-1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(e.Value), "the relay holds it")
	require.NoError(t, attacher.Delete(ctx, []byte("sid-1")))
	_, err = r.Lookup([]byte("sid-1"))
	assert.ErrorIs(t, err, sessioncache.ErrNotFound)

	_, err = clientconfig.Parse(ctx, []byte(`{"half_edge": true, "port": 1}`), "sibling.conf", dir, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a front end's file has an lru and a my_messages block")
}
