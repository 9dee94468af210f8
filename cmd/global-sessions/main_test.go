package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// The test binary doubles as the global-sessions binary (GS_MAIN=1), which is also what a
// relay starts as its child sibling, and as a front-end process (GS_FRONTEND=1) that runs a
// Manager and takes commands on stdin.

func TestMain(m *testing.M) {
	switch {
	case os.Getenv("GS_MAIN") == "1":
		main()
		os.Exit(0)
	case os.Getenv("GS_FRONTEND") == "1":
		os.Exit(frontend())
	}
	code := m.Run()
	if examplesDir != "" {
		os.RemoveAll(examplesDir) // the examples exampleBinary built for the run
	}
	os.Exit(code)
}

// frontend runs a Manager on the table GS_TABLE (creating it if GS_CREATE=1, with
// GS_RECORDS records, default 1000) behind the relay at GS_RELAY, and answers one line per
// command line:
//
//	set KEY VALUE   -> ok
//	get KEY         -> value VALUE | notfound
//	local KEY       -> value VALUE | notfound   (the local table only)
//	forget KEY      -> ok                         (delete from the local table only)
//	del KEY         -> ok
func frontend() int {
	ctx := context.Background()
	c, err := relay.NewClient(relay.ClientConfig{Addr: os.Getenv("GS_RELAY"), BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	defer c.Close()
	records := 1000
	if n, err := strconv.Atoi(os.Getenv("GS_RECORDS")); err == nil {
		records = n
	}
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{
		Table:   sessioncache.Config{Path: os.Getenv("GS_TABLE"), Create: os.Getenv("GS_CREATE") == "1", ElementCount: records, RecordSize: 256},
		Remotes: []sessioncache.Remote{c},
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	defer m.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var v []byte
		var err error
		switch f[0] {
		case "set":
			err = m.Set(rctx, []byte(f[1]), []byte(f[2]), time.Hour)
		case "get":
			v, err = m.Get(rctx, []byte(f[1]))
		case "local":
			v, err = m.Table().Get([]byte(f[1]))
		case "forget":
			_, err = m.Table().Delete([]byte(f[1]))
		case "del":
			err = m.Delete(rctx, []byte(f[1]))
		case "fill": // fill PREFIX N: set PREFIX0..PREFIX(N-1)
			n, _ := strconv.Atoi(f[2])
			for i := 0; i < n && err == nil; i++ {
				err = m.Set(rctx, fmt.Appendf(nil, "%s%d", f[1], i), fmt.Appendf(nil, "value-%s%d", f[1], i), time.Hour)
			}
		case "check": // check PREFIX N: how many of PREFIX0..PREFIX(N-1) are missing or wrong
			n, _ := strconv.Atoi(f[2])
			missing := 0
			for i := range n {
				v, gerr := m.Get(rctx, fmt.Appendf(nil, "%s%d", f[1], i))
				if gerr != nil || string(v) != fmt.Sprintf("value-%s%d", f[1], i) {
					missing++
				}
			}
			v = fmt.Appendf(nil, "missing=%d", missing)
		}
		cancel()
		switch {
		case errors.Is(err, sessioncache.ErrNotFound):
			fmt.Println("notfound")
		case err != nil:
			fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
		case v != nil:
			fmt.Println("value", string(v))
		default:
			fmt.Println("ok")
		}
	}
	return 0
}

// proc is a child process of the test with line-oriented stdin and stdout.
type proc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &proc{cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: &lockedBuf{}}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { p.stop() })
	return p
}

// line returns the next stdout line, failing the test if the process ends first.
func (p *proc) line(t *testing.T) string {
	t.Helper()
	if !p.out.Scan() {
		t.Fatalf("process ended; stderr:\n%s", p.stderr)
	}
	return p.out.Text()
}

// expect reads lines until one matches re and returns its submatches.
func (p *proc) expect(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for range 50 {
		if m := rx.FindStringSubmatch(p.line(t)); m != nil {
			return m
		}
	}
	t.Fatalf("no line matched %q", re)
	return nil
}

// do sends a command to a front end and returns its answer.
func (p *proc) do(t *testing.T, cmd string) string {
	t.Helper()
	_, err := fmt.Fprintln(p.in, cmd)
	require.NoError(t, err)
	return p.line(t)
}

// stop ends the process with SIGTERM (SIGKILL after 10s) and reaps it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.in.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// waitFor retries a front-end command until it gives want: the state it checks arrives
// through other processes. Bounded.
func waitFor(t *testing.T, p *proc, cmd, want string) {
	t.Helper()
	var got string
	for range 500 {
		if got = p.do(t, cmd); got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: got %q, want %q", cmd, got, want)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

// TestEndToEnd runs a relay whose sibling is a child process, two front-end processes on
// one host (one table) and one on a second host (another table), all real processes on
// loopback.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sibling.conf"), `{
    "half_edge" : true,
    "auth_path" : "auths",
    "port" : 0,    // any free port
    "address" : "127.0.0.1",
    "cache" : {
        "token_path" : "./ml_relay.conf",
        "am_initializer" : false,
        "seed" : 9849381,
        "record_size" : 384,
        "el_count" : 2000,
        "stop_child" : true
    }
}`)
	relayConf := func(port int) string {
		return fmt.Sprintf(`{
 	"edge_supported_relay" : true,
	"auth_path" : "auths",
	"port" : %d,    // <- set the port with your own number
	"address" : "127.0.0.1",
    "path_types" : {
        "auths" : {
            "relay" : {
                "proc_name" : ["global-sessions", %q]
            },
            "cache" : {
                "token_path" : "./ml_relay.conf",
                "am_initializer" : true,
                "seed" : 9849381,
                "record_size" : 384,
                "el_count" : 2000
            }
        }
    }
}`, port, filepath.Join(dir, "sibling.conf"))
	}
	writeFile(t, filepath.Join(dir, "relay.conf"), relayConf(0))
	// The relay's table outlives the relay by design; the test removes it.
	t.Cleanup(func() { relay.RemoveState(sectionPath(filepath.Join(dir, "ml_relay.conf"), 9849381)) })
	main := []string{"GS_MAIN=1"}
	r := start(t, main, filepath.Join(dir, "relay.conf"))
	addr := r.expect(t, `^relay: serving front ends on (\S+)`)[1]
	r.expect(t, `^sibling: child process`)
	r.expect(t, `^sibling: serving pressure-relief servers on`) // printed by the child

	hostA, hostB := filepath.Join(dir, "hostA.table"), filepath.Join(dir, "hostB.table")
	fe := func(table string, create bool) *proc {
		env := []string{"GS_FRONTEND=1", "GS_RELAY=" + addr, "GS_TABLE=" + table}
		if create {
			env = append(env, "GS_CREATE=1")
		}
		p := start(t, env)
		require.Equal(t, "ready", p.line(t))
		return p
	}
	a1 := fe(hostA, true)
	a2 := fe(hostA, false)
	b1 := fe(hostB, true)

	// A Set on host A is visible on host B, and to the other process of host A locally.
	require.Equal(t, "ok", a1.do(t, "set sid-1 alice"))
	require.Equal(t, "value alice", a2.do(t, "local sid-1"))
	require.Equal(t, "value alice", b1.do(t, "get sid-1"))
	// A local miss falls through to the relay and is kept locally.
	require.Equal(t, "ok", b1.do(t, "forget sid-1"))
	require.Equal(t, "notfound", b1.do(t, "local sid-1"))
	require.Equal(t, "value alice", b1.do(t, "get sid-1"))
	require.Equal(t, "value alice", b1.do(t, "local sid-1"))
	// Delete propagates to every host.
	require.Equal(t, "ok", b1.do(t, "del sid-1"))
	waitFor(t, a1, "local sid-1", "notfound")
	require.Equal(t, "notfound", a2.do(t, "get sid-1"))

	// The sibling crashes: the relay restarts it and keeps serving.
	pid := regexp.MustCompile(`started sibling child" pid=(\d+)`).FindStringSubmatch(r.stderr.String())
	require.NotNil(t, pid, "relay stderr: %s", r.stderr)
	var n int
	fmt.Sscan(pid[1], &n)
	require.NoError(t, syscall.Kill(n, syscall.SIGKILL))
	require.Equal(t, "ok", a1.do(t, "set sid-2 bob"))
	require.Equal(t, "value bob", b1.do(t, "get sid-2"))
	r.expect(t, `^sibling: serving pressure-relief servers on`) // the restarted child

	// The relay restarts on the same address: front ends reconnect and carry on, and the
	// relay's table (shared memory) kept its entries.
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	writeFile(t, filepath.Join(dir, "relay.conf"), relayConf(atoi(t, port)))
	r.stop()
	r2 := start(t, main, filepath.Join(dir, "relay.conf"))
	r2.expect(t, `^relay: serving front ends on `+regexp.QuoteMeta(addr))
	require.Equal(t, "ok", b1.do(t, "forget sid-2"))
	require.Equal(t, "value bob", b1.do(t, "get sid-2"))
	// A miss on host A waits for its client to reconnect, which re-subscribes before it
	// serves requests; from then on host A hears host B's publications again.
	require.Equal(t, "notfound", a1.do(t, "get no-such-session"))
	require.Equal(t, "ok", b1.do(t, "set sid-3 carol"))
	waitFor(t, a1, "local sid-3", "value carol")
}

func atoi(t *testing.T, s string) int {
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err)
	return n
}

func TestBadConfigs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text, want string
	}{
		{"unknown field", `{"edge_supported_relay": true, "port": 1, "colour": "red"}`, `"colour": unknown field`},
		{"wrong type", `{"edge_supported_relay": true, "port": "7878"}`, `port: line 1: is string, want int`},
		{"missing port", `{"edge_supported_relay": true}`, "port: required"},
		{"no role", `{"port": 1}`, "no role"},
		{"two roles", `{"edge_supported_relay": true, "half_edge": true, "port": 1}`, "more than one"},
		{"syntax", "{\n\"port\": 1,\n}", "line 3"},
		{"auth path without entry", `{"edge_supported_relay": true, "port": 1, "auth_path": "x", "path_types": {"auths": {}}}`, `no entry for auth_path "x"`},
		{"missing tls file", `{"edge_supported_relay": true, "port": 0, "tls": {"server_cert": "nope.pem", "server_key": "nope.key"}}`, "tls"},
		{"placeholder address", `{"edge_supported_relay": true, "port": 0, "address": "binding address",
			"path_types": {"auths": {"cache": {"token_path": "./placeholder.token", "seed": 77}}}}`, `address: "binding address" is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".conf")
			writeFile(t, path, tt.text)
			err := run(context.Background(), path, io.Discard, slog.New(slog.DiscardHandler))
			require.Error(t, err)
			require.Contains(t, err.Error(), path)
			require.Contains(t, err.Error(), tt.want)
		})
	}
	// A refused file created nothing: the placeholder's table is not in /dev/shm.
	_, err := os.Stat(sectionPath(filepath.Join(dir, "placeholder.token"), 77))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestAnEmptyRelayBlockRunsTheSiblingInProcess: a relay file whose relay block names no
// proc_name runs its sibling in its own process, as the documentation says.
func TestAnEmptyRelayBlockRunsTheSiblingInProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.conf")
	writeFile(t, path, `{"edge_supported_relay": true, "port": 0, "address": "127.0.0.1", "sibling": {"port": 0},
		"path_types": {"auths": {"relay": {}, "cache": {"path": "`+filepath.Join(dir, "relay.table")+`"}}}}`)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuf{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, path, out, slog.New(slog.DiscardHandler)) }()
	eventuallyTrue(t, "the sibling to serve", func() bool {
		return strings.Contains(out.String(), "sibling: serving pressure-relief servers on")
	})
	cancel()
	require.NoError(t, <-done)
}

// TestDefaultRuns starts the embedded default, moved to free ports, and stops it.
func TestDefaultRuns(t *testing.T) {
	f, err := config.Parse(defaultConf, "embedded default", "")
	require.NoError(t, err)
	require.Equal(t, config.RoleRelay, f.Role())
	require.Equal(t, 7878, *f.Port)
	zero := 0
	f.Port, f.Sibling.Port = &zero, &zero
	dir := t.TempDir()
	f.PathTypes["auths"].Cache.Path = filepath.Join(dir, "default.table")
	require.Len(t, f.ReliefServers, 2)
	for i, r := range f.ReliefServers {
		r.LRU.Cache.Path = filepath.Join(dir, fmt.Sprintf("relief-%d.table", i))
	}
	// Files left under the tables' names by something else, or by a build with another
	// layout or shape, are replaced.
	writeFile(t, f.PathTypes["auths"].Cache.Path, "not a table")
	other, err := sessioncache.Open(sessioncache.Config{Path: f.ReliefServers[0].LRU.Cache.Path,
		Create: true, ElementCount: 64, RecordSize: 64})
	require.NoError(t, err)
	require.NoError(t, other.Close())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- runFile(ctx, f, pw, slog.New(slog.DiscardHandler)); pw.Close() }()
	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "relief: aging") {
			cancel()
		}
	}
	require.NoError(t, <-done)
	all := strings.Join(lines, "\n")
	require.Contains(t, all, "relay: serving front ends on 127.0.0.1:")
	require.Contains(t, all, "sibling: serving pressure-relief servers on 127.0.0.1:")
	require.Contains(t, all, `relief: expansion server "default-expansion"`)
	require.Contains(t, all, `relief: aging server "default-aging"`)
	require.Contains(t, all, "stopping")
}

// TestTableHint checks when the binary adds its hint about "replace" to an error.
func TestTableHint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.table")
	missing, err := sessioncache.Open(sessioncache.Config{Path: path})
	require.Error(t, err, "attaching to a missing table")
	assert.Nil(t, missing)
	assert.Empty(t, tableHint(err), "replace cannot help with a missing table")

	tb, err := sessioncache.Open(sessioncache.Config{Path: path, Create: true, ElementCount: 64, RecordSize: 64})
	require.NoError(t, err)
	require.NoError(t, tb.Close())
	_, err = sessioncache.Open(sessioncache.Config{Path: path, Create: true, ElementCount: 128, RecordSize: 64})
	require.ErrorIs(t, err, sessioncache.ErrLayoutMismatch)
	assert.Contains(t, tableHint(fmt.Errorf("relay: table: %w", err)), `"replace": true`)

	writeFile(t, path, "not a table")
	_, err = sessioncache.Open(sessioncache.Config{Path: path, Create: true, ElementCount: 64, RecordSize: 64})
	require.ErrorIs(t, err, sessioncache.ErrNotTable)
	assert.Contains(t, tableHint(err), `"replace": true`)

	assert.Empty(t, tableHint(errors.New("port: required")))
}

// eventuallyTrue polls cond (a bounded number of times) for what another goroutine or
// process brings about without a signal to wait on.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestOperatorCommands runs the binary's subcommands as an operator would, against a relay
// and its table: set, get, del, stats, verify, check and -version.
func TestOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "relay.table")
	path := filepath.Join(dir, "relay.conf")
	writeFile(t, path, `{"edge_supported_relay": true, "port": 0, "address": "127.0.0.1", "sibling": {"port": 0},
		"path_types": {"auths": {"cache": {"path": "`+table+`"}}}}`)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuf{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, path, out, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	var addr string
	eventuallyTrue(t, "the relay to serve", func() bool {
		m := regexp.MustCompile(`relay: serving front ends on (\S+) `).FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	exe, err := os.Executable()
	require.NoError(t, err)
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "GS_MAIN=1")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	got, err := cli("set", "-relay", addr, "-ttl", "1h", "sid-1", "alice")
	require.NoError(t, err, got)
	got, err = cli("get", "-relay", addr, "sid-1")
	require.NoError(t, err, got)
	assert.Contains(t, got, "alice")
	got, err = cli("stats", "-table", table)
	require.NoError(t, err, got)
	assert.Contains(t, got, "entries 1 of")
	assert.Contains(t, got, "file system: ")
	got, err = cli("verify", "-table", table)
	require.NoError(t, err, got)
	assert.Contains(t, got, "ok")
	got, err = cli("del", "-relay", addr, "sid-1")
	require.NoError(t, err, got)
	got, err = cli("get", "-relay", addr, "sid-1")
	require.NoError(t, err, got)
	assert.Contains(t, got, "(not found)")

	got, err = cli("check", path)
	require.NoError(t, err, got)
	assert.Contains(t, got, "ok, role edge_supported_relay")
	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, `{"edge_supported_relay": true, "port": 1, "address": "binding address"}`)
	got, err = cli("check", bad)
	require.Error(t, err)
	assert.Contains(t, got, `address: "binding address" is not an IP address`)
	got, err = cli("-version")
	require.NoError(t, err, got)
	assert.Contains(t, got, "global-sessions ")
}

// TestAdminListener: a relay file with an admin block serves /health, /ready (once its
// relief server is connected) and Prometheus /metrics with the relay's, the sibling's
// and the relief server's counts.
func TestAdminListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.conf")
	writeFile(t, path, `{"edge_supported_relay": true, "port": 0, "address": "127.0.0.1", "sibling": {"port": 0},
		"admin": {"port": 0},
		"path_types": {"auths": {"cache": {"path": "`+filepath.Join(dir, "relay.table")+`"}}},
		"relief_servers": [{"relief": {"kind": "aging", "id": "a1"}, "lru": {"cache": {"path": "`+filepath.Join(dir, "a1.table")+`"}}}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuf{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, path, out, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	var base string
	eventuallyTrue(t, "the admin listener", func() bool {
		m := regexp.MustCompile(`admin: /health, /ready and /metrics on (http://\S+)`).FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	get := func(p string) (int, string) {
		resp, err := http.Get(base + p)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, _ := get("/health")
	assert.Equal(t, http.StatusOK, status)
	eventuallyTrue(t, "ready", func() bool { s, _ := get("/ready"); return s == http.StatusOK })
	// One publish and one get that misses, from a front end.
	addr := regexp.MustCompile(`relay: serving front ends on (\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, addr, out.String())
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: addr[1]})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v"), Expiry: time.Now().Add(time.Hour)}))
	_, err = c.Get(ctx, "auths", []byte("missing"))
	require.ErrorIs(t, err, relay.ErrNotFound)
	_, metrics := get("/metrics")
	for _, m := range []string{"relay_connections ", "relay_table_entries ", "relay_outbox_pending ", "sibling_relief_connected 1",
		`relief_entries{id="a1",kind="aging"}`, "go_goroutines ", "relay_large_frame_bytes 0",
		`relay_requests_total{op="publish",status="ok"} 1`, `relay_requests_total{op="get",status="not found"} 1`,
		`relay_request_seconds_count{op="publish"} 1`, `relay_request_seconds_bucket{op="get",le="+Inf"} 1`,
		`sibling_requests_total{op="hello",status="ok"} 1`} {
		assert.Contains(t, metrics, m)
	}
}
