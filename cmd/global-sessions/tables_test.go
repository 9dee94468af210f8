package main

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/config"
)

// TestRelayAndSiblingNameOneSection: the original examples' relay and sibling give the
// same token_path and seed, so they name one shared-memory section; the relay creates it
// and the sibling attaches.
func TestRelayAndSiblingNameOneSection(t *testing.T) {
	dir := "/etc/gs"
	r, err := config.Parse([]byte(`{"edge_supported_relay": true, "port": 7878, "path_types": {"auths": {
		"relay": {"proc_name": ["global-sessions", "./sibling.conf"]},
		"cache": {"token_path": "./ml_relay.conf", "am_initializer": true, "seed": 9849381, "record_size": 384, "el_count": 20000}}}}`),
		"relay.conf", dir)
	require.NoError(t, err)
	s, err := config.Parse([]byte(`{"half_edge": true, "port": 7880, "cache": {"token_path": "./ml_relay.conf",
		"am_initializer": false, "seed": 9849381, "record_size": 384, "el_count": 20000, "stop_child": true}}`), "sibling.conf", dir)
	require.NoError(t, err)
	rc := tableConfig(r, r.PathTypes["auths"].Cache, true)
	sc := tableConfig(s, s.Cache, false)
	assert.True(t, rc.Create)
	assert.False(t, sc.Create)
	assert.Equal(t, rc.Path, sc.Path, "relay and sibling name the same section")
	assert.Equal(t, sectionPath(filepath.Join(dir, "ml_relay.conf"), 9849381), sc.Path)
	assert.Equal(t, 20000, sc.ElementCount)
	assert.Equal(t, uint64(9849381), sc.Seed)
}

// TestTheHandoffLimitsReachTheLibrary: outbox_limit and hint_limit in a relay's file (its
// sibling in process) and in a sibling's file become the relay's and sibling's limits.
func TestTheHandoffLimitsReachTheLibrary(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	r, err := config.Parse([]byte(`{"edge_supported_relay": true, "port": 7878, "sibling": {"port": 7880},
		"outbox_limit": 1048576, "hint_limit": 2097152,
		"path_types": {"auths": {"relay": {}, "cache": {"path": "/dev/shm/x.table"}}}}`), "relay.conf", "/etc/gs")
	require.NoError(t, err)
	rc, err := relayConfig(r, log)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), rc.OutboxLimit)
	plan, err := relaySibling(r, rc, log)
	require.NoError(t, err)
	require.NotNil(t, plan.config, "the sibling runs in process")
	assert.Equal(t, int64(2<<20), plan.config.HintLimit)

	s, err := config.Parse([]byte(`{"half_edge": true, "port": 7880, "hint_limit": 3145728}`), "sibling.conf", "/etc/gs")
	require.NoError(t, err)
	sc, err := siblingConfig(s, log)
	require.NoError(t, err)
	assert.Equal(t, int64(3<<20), sc.HintLimit)
}
