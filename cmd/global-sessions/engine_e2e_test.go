package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// engineGreeting is what examples/engine sends when a WebSocket opens.
type engineGreeting struct {
	Engine   string
	Session  string
	Prepared bool
	Resumed  bool
	Edits    int
}

// startEngine runs examples/engine as a process and returns its address and process.
func startEngine(t *testing.T, name string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(exampleBinary(t, "engine"), "-addr", "127.0.0.1:0", "-name", name)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var line string
	_, err = fmt.Fscanln(out, new(string), new(string), new(string), new(string), &line)
	require.NoError(t, err, "engine %s did not start", name)
	return line, cmd
}

// TestPreparedSessionsEndToEnd runs the original design's session preparation with real
// processes: two examples/engine processes, discovery with a "prepare" block, and a gateway
// in front (both roles of this binary, in process). A session is prepared on the engine
// the session service picks; the browser's WebSocket reaches that engine session, drops,
// and reconnects to the same session with its state. Then that engine is killed, before
// discovery could notice (it polls hourly here): the next connection is routed to the
// other engine, where a session is prepared again.
func TestPreparedSessionsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	addrs := map[string]string{}
	procs := map[string]*exec.Cmd{}
	for _, name := range []string{"e1", "e2"} {
		addrs[name], procs[name] = startEngine(t, name)
	}
	writeFile(t, filepath.Join(dir, "discovery.conf"), fmt.Sprintf(`{
    "discovery" : {
        "address" : "127.0.0.1", "port" : 0,
        "static" : [ { "id" : "e1", "addr" : %q }, { "id" : "e2", "addr" : %q } ],
        "poll_interval" : "1h", "metrics_path" : "-",
        "prepare" : { "ttl" : "1m", "timeout" : "5s" }
    }
}`, addrs["e1"], addrs["e2"]))
	disc, _ := runRole(t, filepath.Join(dir, "discovery.conf"), `on (http://\S+)/`)
	waitHealthy(t, disc, 2)

	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 100, RecordSize: 1024}})
	require.NoError(t, err)
	defer r.Close()
	_, relayPort, _ := strings.Cut(r.Addr().String(), ":")
	writeFile(t, filepath.Join(dir, "jwt.key"), strings.Repeat("0123456789abcdef", 4))
	writeFile(t, filepath.Join(dir, "gateway.conf"), fmt.Sprintf(`{
    "gateway" : {
        "address" : "127.0.0.1", "port" : 0, "anonymous" : true,
        "jwt" : { "hs256_key_file" : "jwt.key" },
        "session_service" : %q,
        "lru" : { "manage_section" : true, "cache" : { "path" : "gateway.table", "el_count" : 100, "record_size" : 1024 } },
        "message_relay" : { "address" : "127.0.0.1", "port" : %s }
    }
}`, disc, relayPort))
	gw, _ := runRole(t, filepath.Join(dir, "gateway.conf"), `gateway: serving on (http://\S+):`)

	cookie := login(t, gw)
	ws, first := openDocument(t, gw, cookie)
	assert.True(t, first.Prepared, "the session was prepared by the session service")
	assert.False(t, first.Resumed)
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("A1=42")))
	var answer struct{ Edits int }
	require.NoError(t, ws.ReadJSON(&answer))
	require.Equal(t, 1, answer.Edits)
	ws.Close() // the user drops

	ws, again := openDocument(t, gw, cookie)
	ws.Close()
	assert.Equal(t, engineGreeting{Engine: first.Engine, Session: first.Session, Prepared: true, Resumed: true, Edits: 1}, again,
		"the reconnection reaches the same engine session, with its state")

	// The engine dies; discovery has not noticed.
	require.NoError(t, procs[first.Engine].Process.Kill())
	procs[first.Engine].Wait()
	for _, c := range []http.Header{cookie, login(t, gw)} {
		ws, moved := openDocument(t, gw, c)
		ws.Close()
		assert.NotEqual(t, first.Engine, moved.Engine)
		assert.True(t, moved.Prepared, "a session is prepared on the other engine")
	}
}

// waitHealthy waits (bounded) until discovery at base lists n healthy engines.
func waitHealthy(t *testing.T, base string, n int) {
	t.Helper()
	for range 200 {
		resp, err := http.Get(base + "/v1/engines")
		require.NoError(t, err)
		var list []struct{ Healthy bool }
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		require.NoError(t, err)
		healthy := 0
		for _, in := range list {
			if in.Healthy {
				healthy++
			}
		}
		if healthy == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("discovery never listed %d healthy engines", n)
}

// openDocument opens sales.qvf through the gateway and returns the engine's greeting.
func openDocument(t *testing.T, base string, cookie http.Header) (*websocket.Conn, engineGreeting) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/app/sales.qvf", cookie)
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("the gateway answered %s", resp.Status)
	}
	require.NoError(t, err)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var g engineGreeting
	require.NoError(t, ws.ReadJSON(&g))
	return ws, g
}
