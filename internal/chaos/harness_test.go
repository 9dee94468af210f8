//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/globalsession/globalsession/internal/faultproxy"
	"github.com/globalsession/globalsession/sessioncache"
)

// params are the knobs of a run.
type params struct {
	duration         time.Duration
	seed             int64
	faults           bool
	clients          int
	replicas         int
	faultMin         time.Duration
	faultMax         time.Duration
	check            checkParams
	keep             bool
	relayRecords     int // 0: as many as every other table
	hosts            int
	expansion, aging int
}

// Kinds of member.
const (
	kindHost   = "host"
	kindRelay  = "relay"
	kindRelief = "relief"
)

// member is one process role the test runs and restarts: a host, the relay or a relief
// server. Its fields under mu change as it is killed and restarted.
type member struct {
	name string
	kind string
	log  *logSink

	// host
	table string
	proxy *faultproxy.Proxy // nil for the fresh host, which talks to the relay directly
	// relief
	rkind, conf string

	mu          sync.Mutex
	p           *proc
	gen         int // counts starts: lines of an earlier incarnation change nothing
	up          bool
	addr        string // a host's control address while up
	cut         bool
	connected   bool          // a relief server's link to the sibling, from its log
	lastConnect time.Duration // when it last connected
}

func (m *member) proc() *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p
}

func (m *member) isUp() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up
}

func (m *member) address() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up {
		return ""
	}
	return m.addr
}

type harness struct {
	t   *testing.T
	p   params
	t0  time.Time
	dir string // configs and logs
	shm string // prefix of every table file of the run in /dev/shm
	bin string // the global-sessions binary
	exe string // this test binary, run as a host

	records    int // el_count of every table
	maxSets    int64
	relayAddr  string
	sibPort    int
	relayTable string
	sibConf    string

	faults *faultLog
	rec    *recorder
	httpc  *http.Client

	relay   *member
	reliefs []*member
	hosts   []*member
	fresh   *member

	bg      sync.WaitGroup // restarts and heals in flight
	stopBg  chan struct{}  // closed to restart and heal at once
	sets    atomic.Int64
	logs    []*logSink
	sinksMu sync.Mutex

	mu           sync.Mutex
	sibIv        int           // the open "sibling down" interval, or -1
	lastSibDeath time.Duration // the last time the test killed the sibling (or the relay)
	siblingPids  map[int]bool  // every sibling child seen, to make sure none outlives the test

	probeSem chan struct{}
	probes   sync.WaitGroup
	revMu    sync.Mutex
	revs     []revSample
	revBusy  int
}

func (h *harness) since() time.Duration { return time.Since(h.t0) }

func newHarness(t *testing.T, p params) *harness {
	h := &harness{t: t, p: p, t0: time.Now(), faults: &faultLog{}, rec: newRecorder(),
		stopBg: make(chan struct{}), sibIv: -1, siblingPids: map[int]bool{}, probeSem: make(chan struct{}, 4)}
	var err error
	if p.keep {
		h.dir, err = os.MkdirTemp("", "gs-chaos-")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("configs and logs kept in %s", h.dir)
	} else {
		h.dir = t.TempDir()
	}
	sweepTables(t)
	h.shm = fmt.Sprintf("%s/gs-chaos-%d-%x-", sessioncache.DefaultDir, os.Getpid(), rand.Uint32())
	h.exe, err = os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.httpc = &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	// Every table must hold every key of the run, so that capacity eviction is never what
	// removes one: at most maxSets keys (a client makes at most one call per minThink, less
	// than half of them sets, and the clients stop making keys there), twice that many
	// records (shards fill unevenly).
	setsPerClient := int64(time.Second/minThink) / 2
	h.maxSets = int64(p.clients)*int64(p.duration/time.Second+1)*setsPerClient + 1000
	h.records = int(2*h.maxSets) + 4096
	t.Cleanup(h.cleanup)
	return h
}

func (h *harness) sink(name string) *logSink {
	l, err := newLogSink(filepath.Join(h.dir, name+".log"), h.t0)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sinksMu.Lock()
	h.logs = append(h.logs, l)
	h.sinksMu.Unlock()
	return l
}

// build builds cmd/global-sessions from the module this package is in.
func (h *harness) build() {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		h.t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if _, err := os.Stat(filepath.Join(root, "cmd", "global-sessions")); err != nil {
		h.t.Fatalf("module root %s has no cmd/global-sessions: %v", root, err)
	}
	h.bin = filepath.Join(h.t.TempDir(), "global-sessions")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", h.bin, "./cmd/global-sessions")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("go build ./cmd/global-sessions: %v\n%s", err, out)
	}
	h.t.Logf("built %s in %v", h.bin, time.Since(start).Round(time.Millisecond))
}

func (h *harness) writeFile(name, text string) string {
	path := filepath.Join(h.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// configure writes every config file. The relay and its sibling get fixed ports so that
// hosts and relief servers find them again after a restart.
func (h *harness) configure() {
	relayPort, err := freePort()
	if err != nil {
		h.t.Fatal(err)
	}
	h.sibPort, err = freePort()
	if err != nil {
		h.t.Fatal(err)
	}
	for h.sibPort == relayPort {
		if h.sibPort, err = freePort(); err != nil {
			h.t.Fatal(err)
		}
	}
	h.relayAddr = fmt.Sprintf("127.0.0.1:%d", relayPort)
	h.relayTable = h.shm + "relay.table"
	cache := func(path string, init bool) string {
		n := h.records
		if path == h.relayTable && h.p.relayRecords > 0 {
			n = h.p.relayRecords
		}
		return fmt.Sprintf(`{ "path" : %q, "am_initializer" : %t, "seed" : 1, "record_size" : %d, "el_count" : %d }`,
			path, init, recordSize, n)
	}
	h.sibConf = h.writeFile("sibling.conf", fmt.Sprintf(`{
    "half_edge" : true, "auth_path" : "auths", "address" : "127.0.0.1", "port" : %d,
    "replicas" : %d,
    "cache" : %s
}`, h.sibPort, h.p.replicas, cache(h.relayTable, false)))
	h.writeFile("relay.conf", fmt.Sprintf(`{
    "edge_supported_relay" : true, "auth_path" : "auths", "address" : "127.0.0.1", "port" : %d,
    "path_types" : { "auths" : {
        "relay" : { "proc_name" : [%q, %q] },
        "cache" : %s
    } }
}`, relayPort, h.bin, h.sibConf, cache(h.relayTable, true)))
	h.relay = &member{name: "relay", kind: kindRelay, log: h.sink("relay")}

	relief := func(kind, id string) *member {
		store := fmt.Sprintf(`"lru" : { "manage_section" : true, "cache" : %s },`, cache(h.shm+id+".table", true))
		// Expansion servers keep an entry for expansionLife at most, less than most
		// lifetimes of the workload: their copies end before the versions do.
		log := fmt.Sprintf(`, "max_life" : %q`, expansionLife)
		if kind == "aging" {
			store = ""
			log = fmt.Sprintf(`, "log" : { "path" : %q, "sync" : "always" }`, filepath.Join(h.dir, id+".store"))
		}
		conf := h.writeFile(id+".conf", fmt.Sprintf(`{
    "full_edge" : true,
    %s
    "relief" : { "kind" : %q, "id" : %q %s },
    "message_relay" : { "auth_path" : "auths", "address" : "127.0.0.1", "port" : %d }
}`, store, kind, id, log, h.sibPort))
		m := &member{name: id, kind: kindRelief, rkind: kind, conf: conf, log: h.sink(id)}
		if kind == "expansion" {
			m.table = h.shm + id + ".table"
		}
		return m
	}
	for i := range h.p.expansion {
		h.reliefs = append(h.reliefs, relief("expansion", fmt.Sprintf("exp-%d", i+1)))
	}
	for i := range h.p.aging {
		h.reliefs = append(h.reliefs, relief("aging", fmt.Sprintf("aging-%d", i+1)))
	}
	for i := range h.p.hosts {
		px, err := faultproxy.Start(h.relayAddr)
		if err != nil {
			h.t.Fatal(err)
		}
		name := fmt.Sprintf("host%d", i)
		h.hosts = append(h.hosts, &member{name: name, kind: kindHost, table: h.shm + name + ".table", proxy: px, log: h.sink(name)})
	}
}

var (
	reSiblingServing = regexp.MustCompile(`^sibling: serving pressure-relief servers on `)
	reSiblingChild   = regexp.MustCompile(`started sibling child" pid=(\d+)`)
)

// start starts m (again) and waits until it is ready.
func (h *harness) start(m *member) error {
	var (
		w      *waiter
		path   = h.bin
		args   []string
		env    []string
		onLine func(stream, line string)
		wait   = 20 * time.Second
	)
	m.mu.Lock()
	m.gen++
	gen := m.gen
	m.connected = false
	m.mu.Unlock()
	current := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.gen == gen
	}
	switch m.kind {
	case kindRelay:
		args = []string{filepath.Join(h.dir, "relay.conf")}
		w = newWaiter("out", `^relay: serving front ends on (\S+)`)
		onLine = func(stream, line string) {
			if current() {
				h.relayLine(stream, line)
			}
		}
	case kindRelief:
		args = []string{m.conf}
		w = newWaiter("out", `^relief: \S+ server "`+regexp.QuoteMeta(m.name)+`" (subscribed to|waiting for) the sibling`)
		onLine = func(stream, line string) {
			if current() {
				h.reliefLine(m, stream, line)
			}
		}
	case kindHost:
		path = h.exe
		relayAddr := h.relayAddr
		if m.proxy != nil {
			relayAddr = m.proxy.Addr()
		}
		env = []string{envHost + "=1", envRelay + "=" + relayAddr, envTable + "=" + m.table,
			envRecords + "=" + strconv.Itoa(h.records), envName + "=" + m.name}
		w = newWaiter("out", `^ready (\S+)$`)
		wait = 30 * time.Second
	}
	p, err := startProc(m.name, m.log, path, args, env, onLine, w)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.p = p
	m.mu.Unlock()
	match, err := w.wait(wait)
	if err != nil {
		p.stop(5 * time.Second)
		return fmt.Errorf("%s: %w", m.name, err)
	}
	m.mu.Lock()
	m.up = true
	if m.kind == kindHost {
		m.addr = match[1]
	}
	m.mu.Unlock()
	return nil
}

// restart starts m again, trying a few times (a relay restarted while its old child still
// holds the sibling's port, say, may need a moment).
func (h *harness) restart(m *member) error {
	var err error
	for range 5 {
		if err = h.start(m); err == nil {
			return nil
		}
		m.log.line("---", "restart failed: "+err.Error())
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// relayLine follows the relay's output (its sibling child writes to the same pipes): the
// sibling coming up ends a "sibling down" interval.
func (h *harness) relayLine(stream, line string) {
	if stream == "out" && reSiblingServing.MatchString(line) {
		h.mu.Lock()
		if h.sibIv >= 0 {
			h.faults.end(h.sibIv, h.since(), "sibling up")
			h.sibIv = -1
		}
		h.mu.Unlock()
	}
	if m := reSiblingChild.FindStringSubmatch(line); m != nil {
		if pid, err := strconv.Atoi(m[1]); err == nil {
			h.mu.Lock()
			h.siblingPids[pid] = true
			h.mu.Unlock()
		}
	}
}

// reliefLine follows a relief server's link to the sibling from its client's log.
func (h *harness) reliefLine(m *member, stream, line string) {
	if stream != "err" {
		return
	}
	switch {
	case strings.Contains(line, `msg="relay: connected"`):
		m.mu.Lock()
		m.connected, m.lastConnect = true, h.since()
		m.mu.Unlock()
		h.faults.note(h.since(), m.name, "connected to the sibling")
	case strings.Contains(line, `msg="relay: connection lost`):
		m.mu.Lock()
		m.connected = false
		m.mu.Unlock()
		h.faults.note(h.since(), m.name, "lost the sibling")
	}
}

// siblingDown opens a "sibling down" interval unless one is open.
func (h *harness) siblingDown(why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastSibDeath = h.since()
	if h.sibIv < 0 {
		h.sibIv = h.faults.begin(h.since(), "sibling", "down", why)
	}
}

// siblingPid returns the relay's current sibling child, or 0.
func (h *harness) siblingPid() int {
	p := h.relay.proc()
	if p == nil || !p.alive() {
		return 0
	}
	for _, c := range childPids(p.pid) {
		if cmdlineHas(c, h.sibConf) {
			h.mu.Lock()
			h.siblingPids[c] = true
			h.mu.Unlock()
			return c
		}
	}
	return 0
}

// startAll starts the relay, the relief servers and the hosts, and waits for each.
func (h *harness) startAll() {
	if err := h.start(h.relay); err != nil {
		h.t.Fatalf("relay: %v\n%s", err, strings.Join(h.relay.log.lastLines(), "\n"))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(h.reliefs)+len(h.hosts))
	for i, m := range append(append([]*member(nil), h.reliefs...), h.hosts...) {
		wg.Go(func() { errs[i] = h.start(m) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.t.Fatal(err)
	}
	if err := h.settle(30 * time.Second); err != nil {
		h.t.Fatalf("the tier did not come up: %v", err)
	}
}

// faultLoop injects a fault every faultMin to faultMax until ctx ends: it kills a random
// process (restarted after a pause) or cuts a random host off the relay for 1 to 10s.
func (h *harness) faultLoop(ctx context.Context, rng *rand.Rand) {
	for {
		wait := h.p.faultMin + time.Duration(rng.Int64N(int64(h.p.faultMax-h.p.faultMin)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if rng.Float64() < 0.3 && h.cutOne(rng) {
			continue
		}
		h.killOne(rng)
	}
}

// cutOne cuts a random host that is not cut off already.
func (h *harness) cutOne(rng *rand.Rand) bool {
	var can []*member
	for _, m := range h.hosts {
		m.mu.Lock()
		if !m.cut {
			can = append(can, m)
		}
		m.mu.Unlock()
	}
	if len(can) == 0 {
		return false
	}
	m := can[rng.IntN(len(can))]
	d := time.Second + time.Duration(rng.Int64N(int64(9*time.Second)))
	m.mu.Lock()
	m.cut = true
	m.mu.Unlock()
	// Half the cuts close the host's connections (a proxy or a peer that resets them), half
	// go silent (a link that drops packets): then only the heartbeats notice.
	how := "closing its connections"
	if rng.IntN(2) == 0 {
		how = "silently"
		m.proxy.Silence()
	} else {
		m.proxy.Cut()
	}
	iv := h.faults.begin(h.since(), m.name, "cut", fmt.Sprintf("cut off the relay for %v, %s", d.Round(time.Millisecond), how))
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		select {
		case <-time.After(d):
		case <-h.stopBg:
		}
		m.proxy.Heal()
		m.mu.Lock()
		m.cut = false
		m.mu.Unlock()
		h.faults.end(iv, h.since(), "healed")
	}()
	return true
}

// killOne SIGKILLs a random live process: a host, the relay, the sibling child or a
// relief server.
func (h *harness) killOne(rng *rand.Rand) {
	pause := 200*time.Millisecond + time.Duration(rng.Int64N(int64(1800*time.Millisecond)))
	var hosts, reliefs []*member
	for _, m := range h.hosts {
		if m.isUp() {
			hosts = append(hosts, m)
		}
	}
	for _, m := range h.reliefs {
		if m.isUp() {
			reliefs = append(reliefs, m)
		}
	}
	relayUp := h.relay.isUp()
	r := rng.Float64()
	switch {
	case r < 0.35 && len(hosts) > 0:
		h.kill(hosts[rng.IntN(len(hosts))], pause)
	case r < 0.5 && relayUp:
		h.kill(h.relay, pause)
	case r < 0.7 && relayUp:
		h.killSibling()
	case len(reliefs) > 0:
		h.kill(reliefs[rng.IntN(len(reliefs))], pause)
	}
}

// kill SIGKILLs m and restarts it after pause (at once when the run stops).
func (h *harness) kill(m *member, pause time.Duration) {
	m.mu.Lock()
	p := m.p
	m.up = false
	m.mu.Unlock()
	iv := h.faults.begin(h.since(), m.name, "down", fmt.Sprintf("SIGKILL pid %d; restart in %v", p.pid, pause.Round(time.Millisecond)))
	if m.kind == kindRelay {
		h.siblingDown("its relay was killed")
	}
	if err := p.kill(); err != nil {
		h.t.Errorf("kill %s: %v", m.name, err)
	}
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		select {
		case <-time.After(pause):
		case <-h.stopBg:
		}
		what := "up"
		if err := h.restart(m); err != nil {
			what = "restart failed: " + err.Error()
			h.t.Errorf("restart %s: %v", m.name, err)
		}
		h.faults.end(iv, h.since(), what)
	}()
}

// killSibling SIGKILLs the relay's sibling child; the relay starts a new one.
func (h *harness) killSibling() {
	pid := h.siblingPid()
	if pid == 0 {
		return
	}
	h.siblingDown(fmt.Sprintf("SIGKILL pid %d", pid))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		h.t.Errorf("kill the sibling: %v", err)
	}
}

// stopFaults restarts and heals everything at once and waits until it is done.
func (h *harness) stopFaults() {
	close(h.stopBg)
	h.bg.Wait()
}

// status asks a host whether its client is connected to the relay.
func (h *harness) status(m *member) (connected bool, connects int, err error) {
	addr := m.address()
	if addr == "" {
		return false, 0, errors.New("down")
	}
	body, err := h.call(addr, "/status", nil)
	if err != nil {
		return false, 0, err
	}
	if _, err := fmt.Sscanf(body, "connected=%t connects=%d", &connected, &connects); err != nil {
		return false, 0, fmt.Errorf("status %q: %w", body, err)
	}
	return connected, connects, nil
}

// unsettled lists what is not up and connected yet: the relay, its sibling child, each
// relief server's link to the sibling (made after the sibling last died), each host's link
// to the relay.
func (h *harness) unsettled() []string {
	var out []string
	if !h.relay.isUp() {
		out = append(out, "relay down")
	}
	h.mu.Lock()
	sibDown, lastDeath := h.sibIv >= 0, h.lastSibDeath
	h.mu.Unlock()
	if sibDown || h.siblingPid() == 0 {
		out = append(out, "sibling not up")
	}
	for _, m := range h.reliefs {
		m.mu.Lock()
		ok := m.up && m.connected && m.lastConnect > lastDeath
		m.mu.Unlock()
		if !ok {
			out = append(out, m.name+" not connected to the sibling")
		}
	}
	for _, m := range append(append([]*member(nil), h.hosts...), h.fresh) {
		if m == nil {
			continue
		}
		if ok, _, err := h.status(m); err != nil || !ok {
			out = append(out, fmt.Sprintf("%s not connected to the relay (%v)", m.name, err))
		}
	}
	return out
}

// settle waits until nothing is unsettled, polling (bounded by timeout).
func (h *harness) settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := h.unsettled()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends one command to a host and returns its answer line.
func (h *harness) call(addr, path string, q url.Values) (string, error) {
	u := "http://" + addr + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := h.httpc.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// stopAll stops every process the test started: hosts first, then relief servers, then
// the relay (which stops its sibling child).
func (h *harness) stopAll() {
	var wg sync.WaitGroup
	stop := func(ms ...*member) {
		for _, m := range ms {
			if m == nil {
				continue
			}
			if p := m.proc(); p != nil {
				wg.Go(func() { p.stop(10 * time.Second) })
			}
			m.mu.Lock()
			m.up = false
			m.mu.Unlock()
		}
		wg.Wait()
	}
	stop(append(append([]*member(nil), h.hosts...), h.fresh)...)
	stop(h.reliefs...)
	stop(h.relay)
	// A sibling child outlives a relay that was SIGKILLed until it notices; none may
	// outlive the test.
	h.mu.Lock()
	pids := make([]int, 0, len(h.siblingPids))
	for pid := range h.siblingPids {
		pids = append(pids, pid)
	}
	h.mu.Unlock()
	for _, pid := range pids {
		for i := 0; i < 100 && cmdlineHas(pid, h.sibConf); i++ {
			time.Sleep(50 * time.Millisecond) // it has lost its relay and is stopping
		}
		if cmdlineHas(pid, h.sibConf) {
			h.t.Logf("sibling child pid %d outlived its relay by 5s; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// tableInfo is the state of one table after the run.
type tableInfo struct {
	name   string
	path   string
	stats  sessioncache.Stats
	verify error
}

// verifyTables attaches to every table of the run (the processes stopped) and verifies it.
func (h *harness) verifyTables() []tableInfo {
	var list []tableInfo
	add := func(name, path string) {
		if path != "" {
			list = append(list, tableInfo{name: name, path: path})
		}
	}
	add("relay", h.relayTable)
	for _, m := range h.reliefs {
		add(m.name, m.table)
	}
	for _, m := range h.hosts {
		add(m.name, m.table)
	}
	if h.fresh != nil {
		add(h.fresh.name, h.fresh.table)
	}
	for i := range list {
		tb, err := sessioncache.Open(sessioncache.Config{Path: list[i].path})
		if err != nil {
			list[i].verify = err
			continue
		}
		list[i].verify = tb.Verify()
		list[i].stats = tb.Stats()
		tb.Close()
	}
	return list
}

// sweepTables removes the table files of earlier runs whose test process is gone (one
// killed before its cleanup ran): they are named gs-chaos-PID-...
func sweepTables(t *testing.T) {
	files, _ := filepath.Glob(sessioncache.DefaultDir + "/gs-chaos-*")
	for _, f := range files {
		fields := strings.SplitN(filepath.Base(f), "-", 4)
		if len(fields) < 4 {
			continue
		}
		pid, err := strconv.Atoi(fields[2])
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if err := os.Remove(f); err == nil {
			t.Logf("removed %s, left by an earlier run", f)
		}
	}
}

// cleanup stops every process, closes the proxies and removes every table file of the run.
func (h *harness) cleanup() {
	h.stopAll()
	for _, m := range h.hosts {
		if m.proxy != nil {
			m.proxy.Close()
		}
	}
	h.httpc.CloseIdleConnections()
	files, _ := filepath.Glob(h.shm + "*")
	for _, f := range files {
		if err := os.RemoveAll(f); err != nil { // tables, and the relay's outbox and hints directories
			h.t.Errorf("remove %s: %v", f, err)
		}
	}
	h.sinksMu.Lock()
	for _, l := range h.logs {
		l.close()
	}
	h.sinksMu.Unlock()
}
