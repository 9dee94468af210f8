// Command discoverypoll measures what polling costs the discovery service: 1,000
// instances (HTTP servers in a child process, each with a health endpoint and a metrics
// endpoint of 20 series) polled every second, and the CPU time the discovery process
// spends on it, as a share of one core.
//
//	cd bench && go run ./discoverypoll
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/discovery"
)

var (
	flagN     = flag.Int("instances", 1000, "instances to poll")
	flagFor   = flag.Duration("for", 10*time.Second, "how long to measure")
	flagChild = flag.Bool("child", false, "internal: serve the instances")
)

func main() {
	flag.Parse()
	if *flagChild {
		serve(*flagN)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "discoverypoll:", err)
		os.Exit(1)
	}
}

// serve starts n HTTP servers on loopback, prints their addresses, and serves until stdin
// closes.
func serve(n int) {
	var metrics strings.Builder
	for i := range 19 {
		fmt.Fprintf(&metrics, "# TYPE engine_metric_%d counter\nengine_metric_%d{kind=\"x\"} %d\n", i, i, i*1000)
	}
	body := metrics.String()
	var scrapes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		// The first series changes on every scrape, as live counters do.
		fmt.Fprintf(w, "# TYPE qix_active_sessions gauge\nqix_active_sessions %d\n%s", scrapes.Add(1)%50, body)
	})
	w := bufio.NewWriter(os.Stdout)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go http.Serve(ln, mux)
		fmt.Fprintln(w, ln.Addr())
	}
	fmt.Fprintln(w, "ready")
	w.Flush()
	io.Copy(io.Discard, os.Stdin)
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-child", "-instances", fmt.Sprint(*flagN))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { in.Close(); cmd.Wait() }()
	var targets discovery.Static
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		targets = append(targets, discovery.Target{Addr: sc.Text()})
	}
	if len(targets) != *flagN {
		return fmt.Errorf("child served %d instances, want %d", len(targets), *flagN)
	}

	fmt.Printf("# discovery polling: %d instances every second for %v each (%d CPUs, %s)\n\n",
		*flagN, *flagFor, runtime.NumCPU(), runtime.Version())
	fmt.Println("| client | instances | metric families parsed | polls | slowest poll | CPU time of the discovery process | share of one core |")
	fmt.Println("|---|--:|---|--:|--:|--:|--:|")
	for _, keep := range [][]string{nil, {"qix_active_sessions"}} {
		for _, c := range []struct {
			name   string
			client *http.Client
		}{{"lean poller (the default)", nil}, {"net/http, a connection kept per instance", tunedClient()}} {
			share, err := measure(targets, keep, c.client)
			if err != nil {
				return err
			}
			fmt.Printf("| %s %s\n", c.name, share)
		}
	}
	return nil
}

// tunedClient is net/http's client with a transport that keeps a connection to each
// instance between polls (the default keeps 100 idle connections in all).
func tunedClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 2
	tr.IdleConnTimeout = 30 * time.Second
	return &http.Client{Transport: tr}
}

// measure polls the targets every second for *flagFor and returns a table row.
func measure(targets discovery.Static, keep []string, client *http.Client) (string, error) {
	s, err := discovery.New(discovery.Config{Provider: targets, PollInterval: time.Second, RefreshInterval: 10 * time.Second, Metrics: keep,
		Client: client})
	if err != nil {
		return "", err
	}
	defer s.Close()
	s.Refresh(context.Background()) // warm up: connections, first metrics
	if h := len(s.Healthy()); h != *flagN {
		return "", fmt.Errorf("%d of %d instances healthy after the first poll", h, *flagN)
	}
	if p := os.Getenv("DISCOVERYPOLL_CPUPROFILE"); p != "" && keep == nil {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	start, c0 := time.Now(), cpu()
	polls, slowest := 0, time.Duration(0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < *flagFor {
		<-tick.C
		t := time.Now()
		s.Poll(context.Background())
		slowest = max(slowest, time.Since(t))
		polls++
	}
	wall, used := time.Since(start), cpu()-c0
	what := "all 20"
	if keep != nil {
		what = "1 (the load metric)"
	}
	return fmt.Sprintf("| %d | %s | %d | %v | %v | %.1f%% |", *flagN, what, polls, slowest.Round(time.Millisecond),
		used.Round(time.Millisecond), 100*float64(used)/float64(wall)), nil
}
