// Command gatewaycompare measures, on loopback, the cost of proxying WebSockets through this
// project's wsproxy.Proxy against Debian's nginx as a WebSocket reverse proxy, with the echo
// backend reached directly as the floor.
//
// Each server runs in its own process: the echo backend (gorilla/websocket, echoes every
// message) and the gateway (wsproxy.NewProxy with a Route that always returns the backend)
// are this program re-executed with a hidden flag (-child backend, -child gateway); nginx is
// started from PATH with a minimal config written to a temp dir. The load generator is this
// process. Workloads: 64-byte text messages, each connection a goroutine writing one message
// and reading its echo in a loop, with 1 and with 100 connections; each cell runs -warmup
// then counts messages for -duration, and records every round trip's latency. Rounds
// (-rounds) interleave the three systems; medians over rounds are reported. Finally -idle
// (10,000) idle WebSockets are opened through the gateway and its resident memory (VmRSS)
// is read before and after. Each proxied connection holds two sockets in the gateway: when
// the per-process limit of open files (RLIMIT_NOFILE, raised as far as allowed) cannot hold
// them all, they are spread over as many gateway processes as needed and their memory is
// summed.
//
// Run it from the bench directory (nginx must be installed: `apt-get install -y nginx`);
// the markdown report goes to stdout, progress to stderr:
//
//	go run ./gatewaycompare
//	go run ./gatewaycompare -rounds 1 -duration 1s -idle 1000     (a quick look)
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
)

var (
	flagChild    = flag.String("child", "", "internal: run as a child server (backend|gateway)")
	flagBackend  = flag.String("backend", "", "internal: the gateway child's backend URL")
	flagRounds   = flag.Int("rounds", 3, "rounds interleaving the three systems")
	flagDuration = flag.Duration("duration", 3*time.Second, "measured time per cell")
	flagWarmup   = flag.Duration("warmup", time.Second, "warm-up time per cell")
	flagIdle     = flag.Int("idle", 10000, "idle WebSockets to open through the gateway")
)

func main() {
	flag.Parse()
	nofile := raiseNofile()
	switch *flagChild {
	case "backend":
		serveBackend()
		return
	case "gateway":
		serveGateway(*flagBackend)
		return
	case "":
	default:
		procs.Logf("unknown -child %q", *flagChild)
		os.Exit(2)
	}
	procs.ExitOnSignal(1, func(os.Signal) { procs.Logf("interrupted: stopping servers") })
	err := run(nofile)
	procs.RunCleanups()
	if err != nil {
		procs.Logf("gatewaycompare: %v", err)
		os.Exit(1)
	}
}

// raiseNofile raises RLIMIT_NOFILE's soft limit to the hard limit (first trying to raise
// both to 65536, which works as root: a proxied connection holds two descriptors, so
// 10,000 of them need more than the common 20,000). Children inherit it. It returns the
// resulting soft limit.
func raiseNofile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Max < 65536 {
		want := syscall.Rlimit{Cur: 65536, Max: 65536}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			return want.Cur
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

func run(nofile uint64) error {
	if _, err := nginxPath(); err != nil {
		return err
	}
	procs.Logf("RLIMIT_NOFILE: %d", nofile)
	backend, err := startChild("backend")
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	backendURL := "ws://" + backend.addr + "/"
	gw, err := startChild("gateway", "-backend", backendURL)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ngx, err := startNginx(backend.addr)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	systems := []system{
		{name: "direct", url: backendURL, pid: backend.pid()},
		{name: "gateway", url: "ws://" + gw.addr + "/", pid: gw.pid()},
		{name: "nginx", url: "ws://" + ngx.addr + "/", pid: ngx.pid()},
	}
	res, err := measureAll(systems)
	if err != nil {
		return err
	}
	// Each proxied connection holds two sockets in the gateway; when the per-process limit
	// of open files cannot hold -idle of them, more gateway processes share them.
	targets := []idleTarget{{url: "ws://" + gw.addr + "/", pid: gw.pid()}}
	perProc := max(1, (int(nofile)-256)/2)
	for len(targets)*perProc < *flagIdle {
		more, err := startChild("gateway", "-backend", backendURL)
		if err != nil {
			return fmt.Errorf("gateway for idle connections: %w", err)
		}
		targets = append(targets, idleTarget{url: "ws://" + more.addr + "/", pid: more.pid()})
	}
	idle := measureIdle(targets, *flagIdle)
	printReport(res, idle, nofile)
	return nil
}
