package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/bench/internal/benchpki"
	"github.com/globalsession/globalsession/bench/internal/procs"
	"github.com/globalsession/globalsession/bench/internal/wsecho"
	"github.com/globalsession/globalsession/gateway/wsproxy"
)

// child is a server process: this program re-executed, or nginx.
type child struct {
	cmd  *exec.Cmd
	addr string
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the process to end with sig and kills it if it has not within 5s.
func (c *child) stop(sig os.Signal) {
	_ = c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// startChild re-executes this program with -child mode and reads the address it listens on
// from the first line of its stdout.
func startChild(mode string, args ...string) (*child, error) {
	cmd, out, err := procs.StartChild(mode, args...)
	if err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	procs.AtCleanup(func() { c.stop(syscall.SIGTERM) })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		c.addr = strings.TrimSpace(strings.TrimPrefix(s, "LISTEN "))
	case <-time.After(10 * time.Second):
		return nil, errors.New("no address within 10s")
	}
	if c.addr == "" {
		return nil, errors.New("exited before listening")
	}
	return c, waitAccepting(c.addr)
}

// waitAccepting dials addr until it accepts, for at most 10s.
func waitAccepting(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after 10s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listenAndAnnounce listens on a free loopback port (over TLS when overTLS is set, which
// returns the TLS listener over the TCP one), prints it and serves h forever.
func listenAndAnnounce(h http.Handler, overTLS func(net.Listener) net.Listener) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		procs.Logf("listen: %v", err)
		os.Exit(1)
	}
	if overTLS != nil {
		ln = overTLS(ln)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		procs.Logf("serve: %v", err)
		os.Exit(1)
	}
}

// serveBackend is the echo backend: every message comes back as it was.
func serveBackend() { listenAndAnnounce(wsecho.Handler(), nil) }

// serveGateway serves wsproxy.Proxy with every connection routed to backendURL, over TLS 1.3
// when certFile is set.
func serveGateway(backendURL, certFile, keyFile string) {
	var tc *tls.Config
	if certFile != "" {
		var err error
		if tc, err = benchpki.ServerTLS(certFile, keyFile); err != nil {
			procs.Logf("gateway: %v", err)
			os.Exit(1)
		}
		tc.MinVersion = tls.VersionTLS13
	}
	p, err := wsproxy.NewProxy(wsproxy.ProxyConfig{Route: func(*http.Request) (wsproxy.Backend, error) {
		return wsproxy.Backend{URL: backendURL, Header: http.Header{}}, nil
	}})
	if err != nil {
		procs.Logf("gateway: %v", err)
		os.Exit(1)
	}
	// GATEWAYCOMPARE_CPUPROFILE profiles the gateway child until it stops.
	if path := os.Getenv("GATEWAYCOMPARE_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	go func() {
		// Shut the proxy down on SIGTERM, briefly, so its connections are closed cleanly.
		sig := make(chan os.Signal, 1)
		procs.NotifyStop(sig)
		<-sig
		pprof.StopCPUProfile()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = p.Shutdown(ctx)
		cancel()
		os.Exit(0)
	}()
	var overTLS func(net.Listener) net.Listener
	if tc != nil {
		// The proxy's own TLS listener, whose connections its event loops can take.
		overTLS = func(ln net.Listener) net.Listener { return wsproxy.NewTLSListener(ln, tc) }
	}
	listenAndAnnounce(p, overTLS)
}
