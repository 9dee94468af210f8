package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
)

// brokerDeployment is seed 002's system as real processes on loopback: a relay, gateway
// instances in broker mode (this test binary as global-sessions), and workers (the
// examples/workers program, built once).
type brokerDeployment struct {
	t        *testing.T
	dir      string
	relay    string // host:port
	gateways map[string]*gatewayProc
	workers  map[string]*workerProc
	working  chan string // "worker client id" as a worker starts slow work
}

type gatewayProc struct {
	*proc
	name, url string
}

type workerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	examplesMu  sync.Mutex
	examplesDir string            // where exampleBinary builds, removed by TestMain
	examplesExe map[string]string // example name -> its binary
)

// exampleBinary builds examples/<name> once per test run and returns the binary's path.
func exampleBinary(t *testing.T, name string) string {
	t.Helper()
	examplesMu.Lock()
	defer examplesMu.Unlock()
	if exe := examplesExe[name]; exe != "" {
		return exe
	}
	if examplesDir == "" {
		dir, err := os.MkdirTemp("", "gs-examples")
		require.NoError(t, err)
		examplesDir, examplesExe = dir, map[string]string{}
	}
	exe := filepath.Join(examplesDir, name)
	out, err := exec.Command("go", "build", "-o", exe, "github.com/globalsession/globalsession/examples/"+name).CombinedOutput()
	require.NoError(t, err, "go build examples/%s:\n%s", name, out)
	examplesExe[name] = exe
	return exe
}

// workersBinary builds examples/workers once per test run.
func workersBinary(t *testing.T) string { return exampleBinary(t, "workers") }

func newBrokerDeployment(t *testing.T, seed int) *brokerDeployment {
	t.Helper()
	workersBinary(t)
	d := &brokerDeployment{t: t, dir: t.TempDir(), gateways: map[string]*gatewayProc{},
		workers: map[string]*workerProc{}, working: make(chan string, 100)}
	writeFile(t, filepath.Join(d.dir, "relay.conf"), fmt.Sprintf(`{
    "edge_supported_relay" : true,
    "address" : "127.0.0.1", "port" : 0,
    "path_types" : { "auths" : { "cache" : {
        "token_path" : "./relay", "am_initializer" : true, "seed" : %d, "record_size" : 1024, "el_count" : 5000
    } } }
}`, seed))
	t.Cleanup(func() { relay.RemoveState(sectionPath(filepath.Join(d.dir, "relay"), uint64(seed))) })
	writeFile(t, filepath.Join(d.dir, "jwt.key"), strings.Repeat("0123456789abcdef", 4))
	r := start(t, []string{"GS_MAIN=1"}, filepath.Join(d.dir, "relay.conf"))
	d.relay = r.expect(t, `^relay: serving front ends on (\S+)`)[1]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay stderr:\n%s", r.stderr)
			for name, g := range d.gateways {
				t.Logf("%s stderr:\n%s", name, g.stderr)
			}
		}
	})
	return d
}

// gateway starts a gateway instance in broker mode.
func (d *brokerDeployment) gateway(name string) *gatewayProc {
	t := d.t
	t.Helper()
	_, port, _ := strings.Cut(d.relay, ":")
	conf := filepath.Join(d.dir, name+".conf")
	writeFile(t, conf, fmt.Sprintf(`{
    "gateway" : {
        "address" : "127.0.0.1", "port" : 0,
        "anonymous" : true,
        "jwt" : { "hs256_key_file" : "jwt.key" },
        "lru" : { "manage_section" : true, "cache" : { "path" : %q, "el_count" : 5000, "record_size" : 1024 } },
        "message_relay" : { "address" : "127.0.0.1", "port" : %s },
        "broker" : { "instance" : %q, "poll_interval" : "100ms", "request_timeout" : "20s", "allow_anonymous" : true }
    }
}`, name+".table", port, name))
	p := start(t, []string{"GS_MAIN=1"}, conf)
	url := p.expect(t, `gateway: serving on (http://\S+):`)[1]
	p.expect(t, `^gateway: broker instance `+regexp.QuoteMeta(name))
	g := &gatewayProc{proc: p, name: name, url: url}
	d.gateways[name] = g
	return g
}

// worker starts an examples/workers process and waits until it joined the queue.
func (d *brokerDeployment) worker(name string) {
	t := d.t
	t.Helper()
	cmd := exec.Command(workersBinary(t), "-relay", d.relay, "-name", name)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	w := &workerProc{cmd: cmd, done: make(chan struct{})}
	joined := make(chan struct{})
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "worker "+name+" serving"):
				close(joined)
			case strings.HasPrefix(line, "working "):
				select {
				case d.working <- name + " " + strings.TrimPrefix(line, "working "):
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	select {
	case <-joined:
	case <-w.done:
		t.Fatalf("worker %s ended before joining", name)
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s did not join", name)
	}
	d.workers[name] = w
}

// kill ends a worker with SIGKILL.
func (d *brokerDeployment) kill(name string) {
	w := d.workers[name]
	require.NoError(d.t, w.cmd.Process.Kill())
	<-w.done
}

// login logs in anonymously at a gateway and returns the cookie header.
func login(t *testing.T, base string) http.Header {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Post(base+"/login/anonymous", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := http.Header{}
	for _, ck := range jar.Cookies(resp.Request.URL) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	return h
}

type assignment struct {
	URL      string `json:"url"`
	Instance string `json:"instance"`
}

// assign asks a gateway (as the main server) for the session's instance for group,
// retrying while discovery has not seen a live instance yet (bounded): that state
// arrives by polling other processes.
func assign(t *testing.T, base string, cookie http.Header, group string, avoid string) assignment {
	t.Helper()
	var last string
	for range 300 {
		a, status, body := getAssignment(t, base+"/v1/assign?group="+group, cookie)
		if status == http.StatusOK && a.Instance != avoid {
			return a
		}
		last = fmt.Sprintf("%d %s", status, body)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no assignment for %s: last answer %s", group, last)
	return assignment{}
}

// getAssignment asks an assignment endpoint (a URL with its parameters) once, and returns
// the answer, its status and its body.
func getAssignment(t *testing.T, url string, cookie http.Header) (assignment, int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header = cookie.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var a assignment
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &a), "%s", body)
	}
	return a, resp.StatusCode, body
}

// assignURL asks an assignment endpoint (a URL with its parameters) for the session's
// instance.
func assignURL(t *testing.T, url string, cookie http.Header) assignment {
	t.Helper()
	a, status, body := getAssignment(t, url, cookie)
	require.Equal(t, http.StatusOK, status, "%s", body)
	return a
}

// wsConn is a browser's connection to a gateway instance in broker mode.
type wsConn struct {
	c        *websocket.Conn
	client   string
	instance string
}

func openWS(t *testing.T, url string, cookie http.Header) *wsConn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, cookie)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	w := &wsConn{c: c}
	n := w.next(t)
	require.Equal(t, "joined", n["gateway"].(map[string]any)["event"], "%v", n)
	w.client = n["gateway"].(map[string]any)["client"].(string)
	w.instance = n["gateway"].(map[string]any)["instance"].(string)
	return w
}

func (w *wsConn) next(t *testing.T) map[string]any {
	t.Helper()
	w.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := w.c.ReadMessage()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return m
}

func (w *wsConn) send(t *testing.T, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	require.NoError(t, w.c.WriteMessage(websocket.TextMessage, b))
}

// TestBrokerEndToEnd runs seed 002 as processes: assignment, replies to a group across
// instances, workers joining while running, a worker killed mid-request, and a gateway
// instance killed under its clients.
func TestBrokerEndToEnd(t *testing.T) {
	d := newBrokerDeployment(t, 7311)
	g1, g2 := d.gateway("gw-1"), d.gateway("gw-2")
	d.worker("w1")
	d.worker("w2")

	// Assignment: from either main server, a session keeps its instance for a workbook.
	alice := login(t, g1.url)
	// (Bounded: a main server whose discovery has not listed an instance yet does not
	// keep the session on it.)
	var a assignment
	for i := 0; i < 300; i++ {
		if a = assign(t, g1.url, alice, "budget", ""); assign(t, g2.url, alice, "budget", "") == a {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		require.Equal(t, a, assign(t, g2.url, alice, "budget", ""), "the other main server reads the same record")
	}
	require.Contains(t, []string{"gw-1", "gw-2"}, a.Instance)

	// The push hub is assigned by user: the same instance from either main server.
	// (Bounded: a main server that has not polled an instance's health yet does not keep
	// the user on it.)
	var hub assignment
	for i := 0; i < 300; i++ {
		if hub = assignURL(t, g1.url+"/v1/hub", alice); assignURL(t, g2.url+"/v1/hub", alice) == hub {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, hub, assignURL(t, g2.url+"/v1/hub", alice))
	require.Equal(t, hub, assignURL(t, g1.url+"/v1/hub", alice))
	require.True(t, strings.HasSuffix(hub.URL, "/hub"), hub.URL)
	hc, resp, err := websocket.DefaultDialer.Dial(hub.URL, alice)
	require.NoError(t, err)
	resp.Body.Close()
	hc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ready map[string]any
	require.NoError(t, hc.ReadJSON(&ready))
	require.Equal(t, "ready", ready["type"])
	hc.Close()

	mine := openWS(t, a.URL, alice)
	require.Equal(t, a.Instance, mine.instance)
	// A second browser of the workbook on the other instance.
	other := g1
	if a.Instance == "gw-1" {
		other = g2
	}
	bob := login(t, other.url)
	theirs := openWS(t, "ws"+strings.TrimPrefix(other.url, "http")+"/ws/budget", bob)
	require.Equal(t, other.name, theirs.instance)

	// An edit reaches both browsers, each exactly once; the sender also gets its ack.
	mine.send(t, map[string]any{"op": "set", "cell": "A1", "value": "42", "id": 1})
	got := map[string]int{}
	for range 2 {
		m := mine.next(t)
		got[m["type"].(string)]++
	}
	require.Equal(t, map[string]int{"ack": 1, "cell": 1}, got)
	cell := theirs.next(t)
	require.Equal(t, "cell", cell["type"])
	require.Equal(t, "A1", cell["cell"])
	require.Equal(t, mine.client, cell["client"])

	// A worker started now is used without restarting anything.
	d.worker("w3")
	served := map[string]bool{}
	for i := 0; i < 100 && !served["w3"]; i++ {
		theirs.send(t, map[string]any{"op": "echo", "id": 100 + i})
		ack := theirs.next(t)
		require.Equal(t, "ack", ack["type"], "%v", ack)
		served[ack["worker"].(string)] = true
	}
	require.True(t, served["w3"], "the new worker served a message: %v", served)

	// A worker killed holding a request: the relay hands the request to another worker.
	mine.send(t, map[string]any{"op": "work", "ms": 300, "id": 7})
	var holder string
	select {
	case line := <-d.working:
		f := strings.Fields(line)
		require.Equal(t, []string{mine.client, "7"}, f[1:])
		holder = f[0]
	case <-time.After(30 * time.Second):
		t.Fatal("no worker started the slow request")
	}
	d.kill(holder)
	reply := mine.next(t)
	if reply["type"] == "ack" {
		require.Equal(t, float64(7), reply["id"])
		require.NotEqual(t, holder, reply["worker"], "another worker answered")
	} else {
		// The other possible outcome: an error notice, never silence.
		require.Equal(t, "error", reply["gateway"].(map[string]any)["event"], "%v", reply)
	}

	// A gateway instance dies under its clients: their connections close; they ask for
	// an instance again, get a live one, and rejoin the workbook.
	victim := d.gateways[theirs.instance]
	require.NoError(t, victim.cmd.Process.Kill())
	theirs.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _, err = theirs.c.ReadMessage()
	require.Error(t, err, "the dead instance's client was disconnected")
	survivor := d.gateways[mine.instance]
	again := assign(t, survivor.url, bob, "budget", victim.name)
	require.Equal(t, survivor.name, again.Instance)
	back := openWS(t, again.URL, bob)
	back.send(t, map[string]any{"op": "set", "cell": "B2", "value": "x", "id": 1})
	got = map[string]int{}
	for range 2 {
		got[back.next(t)["type"].(string)]++
	}
	require.Equal(t, map[string]int{"ack": 1, "cell": 1}, got)
	cell = mine.next(t)
	require.Equal(t, "B2", cell["cell"])
	require.Equal(t, back.client, cell["client"])

	// A gateway instance started now is recognised without restarting anything: new
	// sessions are assigned to it (it is the least loaded), and it serves the workbook.
	g3 := d.gateway("gw-3")
	var fresh assignment
	var carol http.Header
	// Bounded: the main server's discovery sees the instance within a poll interval.
	for i := 0; i < 300 && fresh.Instance != "gw-3"; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		carol = login(t, survivor.url)
		fresh = assign(t, survivor.url, carol, "budget", "")
	}
	require.Equal(t, "gw-3", fresh.Instance, "the new instance was assigned")
	onG3 := openWS(t, fresh.URL, carol)
	require.Equal(t, g3.name, onG3.instance)
	onG3.send(t, map[string]any{"op": "set", "cell": "C3", "value": "new", "id": 1})
	cell = mine.next(t)
	require.Equal(t, "C3", cell["cell"])
	cell = back.next(t)
	require.Equal(t, "C3", cell["cell"])

	// Stopping an instance (SIGTERM) closes its clients with 1001, going away.
	survivor.stop()
	back.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _, err = back.c.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseGoingAway), "got %v", err)
}

// TestBrokerLoad runs 500 browsers in 50 workbooks through 2 gateway instances and 4
// workers, each browser sending a bounded number of edits, and checks that every edit's
// cell update reached every member of its workbook exactly once, and every sender its ack.
func TestBrokerLoad(t *testing.T) {
	const (
		clients  = 500
		groups   = 50
		perGroup = clients / groups
		edits    = 4 // per client
	)
	d := newBrokerDeployment(t, 7312)
	gws := []*gatewayProc{d.gateway("gw-1"), d.gateway("gw-2")}
	for i := 1; i <= 4; i++ {
		d.worker(fmt.Sprintf("w%d", i))
	}
	cookies := make([]http.Header, 10)
	for i := range cookies {
		cookies[i] = login(t, gws[i%2].url)
	}
	// Connect everyone first, so that every member hears every edit of its workbook.
	conns := make([]*wsConn, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			g := gws[i%2]
			c, resp, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws%s/ws/wb-%d", strings.TrimPrefix(g.url, "http"), i%groups), cookies[i%len(cookies)])
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			resp.Body.Close()
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			var n struct {
				Gateway struct{ Event, Client string }
			}
			if err := c.ReadJSON(&n); err != nil || n.Gateway.Event != "joined" {
				errs <- fmt.Errorf("client %d: joined: %v %+v", i, err, n)
				c.Close()
				return
			}
			conns[i] = &wsConn{c: c, client: n.Gateway.Client}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()

	type cellMsg struct {
		Type, Cell, Client, Worker string
		ID                         int
	}
	// seen[i] counts, for client i, each (sender, id) it received.
	seen := make([]map[string]int, clients)
	acks := make([]int, clients)
	readErrs := make(chan error, clients)
	start := time.Now()
	var rg sync.WaitGroup
	for i, c := range conns {
		seen[i] = map[string]int{}
		rg.Go(func() {
			want := perGroup*edits + edits
			for got := 0; got < want; got++ {
				c.c.SetReadDeadline(time.Now().Add(60 * time.Second))
				_, raw, err := c.c.ReadMessage()
				var m cellMsg
				if err == nil {
					err = json.Unmarshal(raw, &m)
				}
				if err != nil {
					readErrs <- fmt.Errorf("client %d after %d messages: %w", i, got, err)
					return
				}
				switch m.Type {
				case "ack":
					acks[i]++
				case "cell":
					seen[i][fmt.Sprintf("%s#%d", m.Client, m.ID)]++
				default:
					readErrs <- fmt.Errorf("client %d: unexpected %s", i, raw)
					return
				}
			}
		})
	}
	var sg sync.WaitGroup
	for i, c := range conns {
		sg.Go(func() {
			for e := 1; e <= edits; e++ {
				b, _ := json.Marshal(map[string]any{"op": "set", "cell": fmt.Sprintf("C%d", e), "value": "v", "id": e})
				if err := c.c.WriteMessage(websocket.TextMessage, b); err != nil {
					readErrs <- fmt.Errorf("client %d send: %w", i, err)
					return
				}
			}
		})
	}
	sg.Wait()
	rg.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	for i := range conns {
		require.Equal(t, edits, acks[i], "client %d acks", i)
		require.Len(t, seen[i], perGroup*edits, "client %d: distinct edits of its workbook", i)
		for key, n := range seen[i] {
			require.Equal(t, 1, n, "client %d received %s %d times", i, key, n)
		}
		// Every edit it saw came from a member of its own workbook.
		for j := i % groups; j < clients; j += groups {
			for e := 1; e <= edits; e++ {
				require.Contains(t, seen[i], fmt.Sprintf("%s#%d", conns[j].client, e))
			}
		}
	}
	t.Logf("%d edits, %d deliveries in %v", clients*edits, clients*(perGroup*edits+edits), elapsed)
}
