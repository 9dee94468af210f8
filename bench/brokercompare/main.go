// Command brokercompare measures, on loopback, how many messages per second go through
// the broker path (a client's WebSocket into a gateway instance in broker mode, the
// relay's worker queue, a worker, and the reply back, possibly through the relay to the
// other instance), against a plain WebSocket echo server measured in the same run.
//
// Every server runs in its own process, this program re-executed with a hidden flag
// (-child relay|gateway|worker|echo): one relay, two gateway instances (broker.Broker,
// each with its own session table in front of the relay, as two hosts would have, plus
// gateway.Login at /login/), -workers workers (broker.Worker: "echo ..." is answered to
// its sender, "set <x>" with "ok" to its sender and the message to the whole group), and
// the echo server. The load generator is this process; it logs in once (anonymous) at the
// first instance and uses that session's cookie on both.
//
// Cells, each -warmup then counted for -duration, with 64-byte payloads:
//
//   - echo: C connections straight to the echo server, each writing a message and reading
//     its echo in a loop (C = 1, 10, 100); the baseline.
//   - sender: C connections spread over the two instances, one group each, each sending
//     "echo <payload>" and reading the one reply in a loop (C = 1, 100).
//   - group: G groups of 10 members alternating between the instances; one member per group
//     sends "set <payload>" in a loop and waits for its ack and its own copy, the nine
//     others read what comes (G = 1, 10). At the end every member must have received
//     exactly as many copies as its sender sent edits; a difference is reported as an error.
//
// Rounds (-rounds) run every cell, rotating their order; medians over rounds are reported,
// with ratios to the echo baseline at the same connection count (for group, at C = G).
//
// Run it from the bench directory; the markdown report goes to stdout, progress to stderr:
//
//	go run ./brokercompare
//	go run ./brokercompare -rounds 1 -duration 1s     (a quick look)
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
)

var (
	flagChild    = flag.String("child", "", "internal: run as a child server (relay|gateway|worker|echo)")
	flagRelay    = flag.String("relay", "", "internal: the relay address of a gateway or worker child")
	flagName     = flag.String("name", "", "internal: the instance or worker name of a child")
	flagTable    = flag.String("table", "", "internal: the session table file of a relay or gateway child")
	flagRounds   = flag.Int("rounds", 3, "rounds, each running every cell once")
	flagDuration = flag.Duration("duration", 3*time.Second, "measured time per cell")
	flagWarmup   = flag.Duration("warmup", time.Second, "warm-up time per cell")
	flagWorkers  = flag.Int("workers", 2, "worker processes serving the queue")
)

func main() {
	flag.Parse()
	if *flagChild != "" {
		if err := runChild(*flagChild); err != nil {
			procs.Logf("brokercompare child %s %s: %v", *flagChild, *flagName, err)
			os.Exit(1)
		}
		return
	}
	if *flagRounds < 1 || *flagWorkers < 1 || *flagDuration <= 0 || *flagWarmup < 0 {
		procs.Logf("brokercompare: -rounds and -workers must be at least 1, -duration positive")
		os.Exit(2)
	}
	procs.ExitOnSignal(1, func(os.Signal) { procs.Logf("interrupted: stopping servers") })
	failed, err := run()
	procs.RunCleanups()
	if err != nil {
		procs.Logf("brokercompare: %v", err)
		os.Exit(1)
	}
	if failed {
		procs.Logf("brokercompare: the group delivery check FAILED (see the report)")
		os.Exit(1)
	}
}

// runChild serves one child mode until SIGTERM.
func runChild(mode string) error {
	switch mode {
	case "relay":
		return serveRelay(*flagTable)
	case "gateway":
		return serveGateway(*flagRelay, *flagName, *flagTable)
	case "worker":
		return serveWorker(*flagRelay, *flagName)
	case "echo":
		return serveEcho()
	}
	return fmt.Errorf("unknown -child %q", mode)
}

// run starts the servers, measures every cell and prints the report. failed says the
// group delivery check found a mismatch.
func run() (failed bool, err error) {
	t, err := startTopology(*flagWorkers)
	if err != nil {
		return false, err
	}
	res, err := measureAll(t)
	if err != nil {
		return false, err
	}
	printReport(res)
	return len(res.mismatches) > 0, nil
}
