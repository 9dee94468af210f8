package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/config"
)

// TestDiscoveryRole runs `global-sessions discovery.conf` (in process) with a static
// provider and checks the Mira API and the session service it serves.
func TestDiscoveryRole(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			io.WriteString(w, "qix_active_sessions 2\n")
		}
	}))
	defer engine.Close()
	addr := strings.TrimPrefix(engine.URL, "http://")
	dir := t.TempDir()
	path := filepath.Join(dir, "discovery.conf")
	writeFile(t, path, fmt.Sprintf(`{
    // a Mira-style discovery service with one engine
    "discovery" : {
        "address" : "127.0.0.1", "port" : 0,
        "static" : [ { "id" : "engine-1", "addr" : %q } ],
        "load_metric" : "qix_active_sessions"
    }
}`, addr))
	base, stop := runRole(t, path, `on (http://\S+)/`)

	var engines []struct {
		ID      string
		Healthy bool
		Metrics map[string]float64
	}
	resp, err := http.Get(base + "/v1/engines")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&engines))
	resp.Body.Close()
	require.Len(t, engines, 1)
	assert.True(t, engines[0].Healthy)
	assert.Equal(t, 2.0, engines[0].Metrics["qix_active_sessions"])

	resp, err = http.Get(base + "/v1/route?session=alice&document=sales.qvf")
	require.NoError(t, err)
	var route struct{ URL, Instance string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&route))
	resp.Body.Close()
	assert.Equal(t, "ws://"+addr+"/app/sales.qvf", route.URL)
	assert.Equal(t, "engine-1", route.Instance)

	require.NoError(t, stop())
}

func TestDiscoveryConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, text, want string }{
		{"two providers", `{"discovery": {"port": 0, "static": [], "file": "x.json"}}`, "exactly one provider"},
		{"no port", `{"discovery": {"static": []}}`, "discovery.port: required"},
		{"bad dns", `{"discovery": {"port": 0, "dns": {"name": ""}}}`, "discovery.dns"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".conf")
			writeFile(t, path, tt.text)
			err := run(context.Background(), path, io.Discard, slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), path)
		})
	}
}

// runRole runs the role of the config file at path in process and returns the first
// submatch of pattern in its first line of output (where it listens), and a function that
// stops it and returns run's error.
func runRole(t *testing.T, path, pattern string) (string, func() error) {
	t.Helper()
	m, stop := runRoleMatching(t, path, pattern)
	return m[0], stop
}

// runRoleMatching is runRole for a role whose output has several lines of interest: it
// reads lines (at most 20) until each pattern has matched one, and returns each first
// submatch.
func runRoleMatching(t *testing.T, path string, patterns ...string) ([]string, func() error) {
	t.Helper()
	f, err := config.Load(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- runFile(ctx, f, pw, slog.New(slog.DiscardHandler)); pw.Close() }()
	sc := bufio.NewScanner(pr)
	found := make([]string, len(patterns))
	for left, lines := len(patterns), 0; left > 0; lines++ {
		if lines == 20 || !sc.Scan() {
			cancel()
			t.Fatalf("the role did not print lines matching %q: %v", patterns, <-done)
		}
		for i, p := range patterns {
			if m := regexp.MustCompile(p).FindStringSubmatch(sc.Text()); m != nil && found[i] == "" {
				found[i] = m[1]
				left--
			}
		}
	}
	go io.Copy(io.Discard, pr)
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return found, stop
}
