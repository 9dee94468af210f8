package main

import (
	"fmt"
	"runtime"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printReport writes the markdown report to stdout.
func printReport(res results, idle, idleNginx idleResult, nofile uint64) {
	fmt.Printf("# wsproxy.Proxy vs nginx vs direct (WebSocket echo, loopback)\n\n")
	if *flagTLS {
		fmt.Printf("Browsers' side over TLS 1.3 (wss://, a self-signed P-256 certificate made for the run) for the gateway and nginx; " +
			"direct, and both proxies' links to the backend, plain ws://.\n\n")
	}
	fmt.Printf("Machine: %d CPUs, %s/%s, %s, %s, RLIMIT_NOFILE %d. Load generator, backend, "+
		"gateway and nginx (1 worker) share the machine.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), nginxVersion(), nofile)
	fmt.Printf("64-byte text messages, write-then-read per connection; %v measured after %v warm-up; "+
		"median of %d rounds interleaving the systems.\n\n", *flagDuration, *flagWarmup, *flagRounds)
	fmt.Println("| conns | system | msg/s | median RTT | p99 RTT | server CPU per message |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	for _, n := range workloads {
		for _, s := range []string{"direct", "gateway", "nginx"} {
			c := res[n][s]
			fmt.Printf("| %d | %s | %.0f | %s | %s | %.1f µs |\n", n, s, c.rate, ms(c.p50), ms(c.p99), float64(c.cpu)/1e3)
		}
	}
	fmt.Println("\n(Server CPU: the backend's for direct, the proxy process's otherwise.)")
	fmt.Println()
	fmt.Println("| conns | msg/s gateway/nginx | msg/s gateway/direct | added median RTT gateway | added median RTT nginx | added gateway/nginx | CPU per message gateway/nginx |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	thrOK, latOK := true, true
	for _, n := range workloads {
		d, g, x := res[n]["direct"], res[n]["gateway"], res[n]["nginx"]
		addG, addX := g.p50-d.p50, x.p50-d.p50
		ratio := float64(addG) / float64(addX)
		thrOK = thrOK && g.rate >= x.rate
		latOK = latOK && addX > 0 && ratio <= 1.2
		fmt.Printf("| %d | %.2fx | %.2fx | %s | %s | %.2fx | %.2fx |\n", n, g.rate/x.rate, g.rate/d.rate, ms(addG), ms(addX), ratio, float64(g.cpu)/float64(x.cpu))
	}
	fmt.Println()
	perConn := printIdle(idle, nofile)
	perConnNginx := printIdle(idleNginx, nofile)
	if perConn > 0 && perConnNginx > 0 {
		fmt.Printf("Idle memory per connection, gateway/nginx: %.2fx.\n\n", perConn/perConnNginx)
	}
	memOK := idle.err == nil && idle.opened == idle.want && idle.want >= 10000 && idle.rssAfter < 1<<30
	fmt.Println("Targets:")
	fmt.Printf("- gateway throughput >= 1.0x nginx's (every workload): %s\n", mark(thrOK))
	fmt.Printf("- added median latency <= 1.2x nginx's (every workload): %s\n", mark(latOK))
	fmt.Printf("- 10,000 idle proxied connections under 1 GiB (gateway VmRSS): %s\n", mark(memOK))
	fmt.Printf("- idle memory per connection <= nginx's: %s\n", mark(perConn > 0 && perConnNginx > 0 && perConn <= perConnNginx))
}

// printIdle reports one proxy's idle connections and returns its bytes per connection (0
// when none opened).
func printIdle(idle idleResult, nofile uint64) float64 {
	procs := "one " + idle.name + " process"
	if idle.procs > 1 {
		procs = fmt.Sprintf("%d %s processes, %d each (RLIMIT_NOFILE %d; two sockets per connection)", idle.procs, idle.name, idle.want/idle.procs, nofile)
	}
	fmt.Printf("Idle connections through %s: %d of %d opened in %v", procs, idle.opened, idle.want, idle.openTime.Round(time.Millisecond))
	if idle.err != nil {
		fmt.Printf(" (stopped: %v)", idle.err)
	}
	perConn := 0.0
	if idle.opened > 0 {
		perConn = float64(idle.rssAfter-idle.rssBefore) / float64(idle.opened)
	}
	fmt.Printf("; %s VmRSS (summed) %.1f MiB before, %.1f MiB after, %.1f KiB per connection.\n\n",
		idle.name, float64(idle.rssBefore)/(1<<20), float64(idle.rssAfter)/(1<<20), perConn/1024)
	return perConn
}
