package relief

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// startRedis runs a real redis-server on a free loopback port for the test. Without one
// installed the test is skipped, except in CI (.ci/run installs Debian's redis-server).
func startRedis(t *testing.T) string {
	t.Helper()
	return startRedisNode(t)
}

var sharedRedis = map[*testing.T]string{}

// startRedisOnce starts one redis-server for a test and its subtests' reopens: the first
// call of a (sub)test starts it, later calls from the same test reuse it.
func startRedisOnce(t *testing.T) string {
	t.Helper()
	if addr, ok := sharedRedis[t]; ok {
		return addr
	}
	addr := startRedis(t)
	sharedRedis[t] = addr
	t.Cleanup(func() { delete(sharedRedis, t) })
	return addr
}

// startRedisNode starts one redis-server with extra arguments in a directory of its own.
func startRedisNode(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed; .ci/run should have installed it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return ""
}

func TestRedisStore(t *testing.T) {
	addr := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := NewRedisStore(ctx, RedisConfig{Addrs: []string{addr}, Prefix: "test:"})
	require.NoError(t, err)
	defer s.Close()

	_, _, err = entryParts(s.Get(context.Background(), []byte("k")))
	require.ErrorIs(t, err, ErrNotFound)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond) // Redis keeps milliseconds
	require.NoError(t, put(s, []byte("k"), sessioncache.Entry{Value: []byte("session"), Expiry: exp}))
	require.NoError(t, put(s, []byte("forever"), sessioncache.Entry{Value: []byte("x")}))
	v, gotExp, err := entryParts(s.Get(context.Background(), []byte("k")))
	require.NoError(t, err)
	assert.Equal(t, "session", string(v))
	assert.True(t, exp.Equal(gotExp))
	_, noExp, err := entryParts(s.Get(context.Background(), []byte("forever")))
	require.NoError(t, err)
	assert.True(t, noExp.IsZero())
	assert.Equal(t, 2, s.Len(), "the database's size, without a scan")

	require.NoError(t, put(s, []byte("past"), sessioncache.Entry{Value: []byte("x"), Expiry: time.Now().Add(-time.Second)}))
	_, _, err = entryParts(s.Get(context.Background(), []byte("past")))
	require.ErrorIs(t, err, ErrNotFound, "an expired entry is never returned")

	require.NoError(t, put(s, []byte("k"), sessioncache.Entry{Deleted: true}))
	_, _, err = entryParts(s.Get(context.Background(), []byte("k")))
	require.ErrorIs(t, err, ErrNotFound)

	// A relief server on Redis keeps its entries across its own restart.
	srv, err := New(Config{Kind: Aging, Store: s})
	require.NoError(t, err)
	require.NoError(t, srv.Evict(ctx, "auths", []byte("aged"), sessioncache.Entry{Value: []byte("out"), Expiry: exp}))
	s2, err := NewRedisStore(ctx, RedisConfig{Addrs: []string{addr}, Prefix: "test:"})
	require.NoError(t, err)
	defer s2.Close()
	v, _, err = entryParts(s2.Get(context.Background(), []byte("aged")))
	require.NoError(t, err)
	assert.Equal(t, "out", string(v))

	_, err = NewRedisStore(ctx, RedisConfig{Addrs: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.1:1")
}

// TestRedisStoreCluster runs the store against a real three-node Redis Cluster on loopback.
func TestRedisStoreCluster(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-cli is not installed; .ci/run should have installed redis-server")
		}
		t.Skip("redis-cli is not installed")
	}
	var addrs []string
	for range 3 {
		addrs = append(addrs, startRedisNode(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The cluster agrees on its slots a moment after create returns: wait (bounded).
	for i := 0; ; i++ {
		o, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", addrs[0][len("127.0.0.1:"):], "cluster", "info").Output()
		if strings.Contains(string(o), "cluster_state:ok") {
			break
		}
		require.Less(t, i, 200, "cluster never became ok: %s", o)
		time.Sleep(50 * time.Millisecond)
	}
	s, err := NewRedisStore(ctx, RedisConfig{Addrs: addrs})
	require.NoError(t, err)
	defer s.Close()
	for i := range 300 {
		require.NoError(t, put(s, fmt.Appendf(nil, "k%d", i), sessioncache.Entry{Value: fmt.Appendf(nil, "v%d", i), Expiry: time.Now().Add(time.Hour)}))
	}
	for i := range 300 {
		v, _, err := entryParts(s.Get(context.Background(), fmt.Appendf(nil, "k%d", i)))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("v%d", i), string(v))
	}
	assert.Equal(t, 300, s.Len(), "keys are spread over the masters and all counted (DBSIZE of each)")
	require.NoError(t, put(s, []byte("k7"), sessioncache.Entry{Deleted: true}))
	_, _, err = entryParts(s.Get(context.Background(), []byte("k7")))
	require.ErrorIs(t, err, ErrNotFound)
}
