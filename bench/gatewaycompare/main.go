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
// (10,000) idle WebSockets are opened through the gateway, and then as many through nginx,
// and each one's resident memory (VmRSS; nginx's master and worker) is read before and
// after. With -tls the load generator reaches the gateway and nginx over TLS 1.3 (wss://, a
// P-256 certificate made for the run), as browsers do; the backend stays ws://. Each proxied connection holds two sockets in the gateway: when
// the per-process limit of open files (RLIMIT_NOFILE, raised as far as allowed) cannot hold
// them all, they are spread over as many gateway processes as needed and their memory is
// summed.
//
// Run it from the bench directory (nginx must be installed: `apt-get install -y nginx`);
// the markdown report goes to stdout, progress to stderr:
//
//	go run ./gatewaycompare
//	go run ./gatewaycompare -rounds 1 -duration 1s -idle 1000     (a quick look)
//	go run ./gatewaycompare -tls                                   (wss://)
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/bench/internal/benchpki"
	"github.com/globalsession/globalsession/bench/internal/procs"
)

var (
	flagChild    = flag.String("child", "", "internal: run as a child server (backend|gateway)")
	flagBackend  = flag.String("backend", "", "internal: the gateway child's backend URL")
	flagRounds   = flag.Int("rounds", 3, "rounds interleaving the three systems")
	flagDuration = flag.Duration("duration", 3*time.Second, "measured time per cell")
	flagWarmup   = flag.Duration("warmup", time.Second, "warm-up time per cell")
	flagIdle     = flag.Int("idle", 10000, "idle WebSockets to open through the gateway, and then through nginx")
	flagTLS      = flag.Bool("tls", false, "browsers' side over TLS 1.3 (wss://) for the gateway and nginx, with a certificate made for the run; the backend stays ws://")
	flagTLSCert  = flag.String("tls-cert", "", "internal: the gateway child's certificate")
	flagTLSKey   = flag.String("tls-key", "", "internal: the gateway child's key")
)

func main() {
	flag.Parse()
	nofile := raiseNofile()
	switch *flagChild {
	case "backend":
		serveBackend()
		return
	case "gateway":
		serveGateway(*flagBackend, *flagTLSCert, *flagTLSKey)
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
	gwArgs, scheme := []string{"-backend", backendURL}, "ws://"
	var certs *benchpki.PKI
	if *flagTLS {
		dir, err := os.MkdirTemp("", "gatewaycompare-tls-")
		if err != nil {
			return err
		}
		procs.AtCleanup(func() { os.RemoveAll(dir) })
		if certs, err = benchpki.New(dir); err != nil {
			return err
		}
		tc := certs.ClientTLS()
		tc.MinVersion = tls.VersionTLS13
		dialer.TLSClientConfig = tc
		gwArgs, scheme = append(gwArgs, "-tls-cert", certs.CertFile, "-tls-key", certs.KeyFile), "wss://"
	}
	gw, err := startChild("gateway", gwArgs...)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ngx, err := startNginx(backend.addr, certs)
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	systems := []system{
		{name: "direct", url: backendURL, pid: backend.pid()},
		{name: "gateway", url: scheme + gw.addr + "/", pid: gw.pid()},
		{name: "nginx", url: scheme + ngx.addr + "/", pid: ngx.pid()},
	}
	res, err := measureAll(systems)
	if err != nil {
		return err
	}
	// Each proxied connection holds two sockets in the gateway; when the per-process limit
	// of open files cannot hold -idle of them, more gateway processes share them.
	targets := []idleTarget{{url: scheme + gw.addr + "/", pids: []int{gw.pid()}}}
	perProc := max(1, (int(nofile)-256)/2)
	for len(targets)*perProc < *flagIdle {
		more, err := startChild("gateway", gwArgs...)
		if err != nil {
			return fmt.Errorf("gateway for idle connections: %w", err)
		}
		targets = append(targets, idleTarget{url: scheme + more.addr + "/", pids: []int{more.pid()}})
	}
	idle := measureIdle("gateway", targets, *flagIdle)
	// nginx's one worker holds them all (worker_connections and worker_rlimit_nofile are
	// raised for it); its memory is the master's and the worker's.
	idleNginx := measureIdle("nginx", []idleTarget{{url: scheme + ngx.addr + "/", pids: append([]int{ngx.pid()}, childPIDs(ngx.pid())...)}}, min(*flagIdle, nginxMaxIdle))
	printReport(res, idle, idleNginx, nofile)
	return nil
}
