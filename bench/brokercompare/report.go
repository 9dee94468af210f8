package main

import (
	"fmt"
	"runtime"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// ratio formats a/b, or "n/a" without a baseline.
func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3fx", a/b)
}

func roundsNote() string {
	if *flagRounds == 1 {
		return "one round, so no median"
	}
	return fmt.Sprintf("figures are medians over %d rounds, the order of the cells rotated each round", *flagRounds)
}

// printReport writes the markdown report to stdout.
func printReport(res *results) {
	fmt.Printf("# Broker path vs plain WebSocket echo, loopback\n\n")
	fmt.Printf("Machine: %d CPUs, %s/%s, %s. The load generator, the relay, both gateway instances, "+
		"the %d workers and the echo server are separate processes sharing the machine.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *flagWorkers)
	fmt.Printf("Settings: -rounds %d -duration %v -warmup %v -workers %d. Payloads of %d bytes; every "+
		"connection (every group sender) is a closed loop, one message in flight; %s.\n\n",
		*flagRounds, *flagDuration, *flagWarmup, *flagWorkers, payloadSize, roundsNote())
	fmt.Printf("Topology of the broker cells: 1 relay; 2 gateway instances (broker.Broker, each with its "+
		"own session table in front of the relay); %d workers (broker.Worker) on the relay's queue; "+
		"one anonymous session, logged in at gw-1, used at both instances.\n\n", *flagWorkers)

	fmt.Printf("## (a) Baseline: echo server, direct\n\n")
	fmt.Println("| conns | msg/s | median RTT | p99 RTT |")
	fmt.Println("|---:|---:|---:|---:|")
	for _, c := range cells {
		if c.kind == kindEcho {
			s := res.cells[c]
			fmt.Printf("| %d | %.0f | %s | %s |\n", c.n, s.rate, ms(s.p50), ms(s.p99))
		}
	}
	fmt.Printf("\nC = 10 is the baseline of the group cell with 10 groups (10 senders).\n\n")

	fmt.Printf("## (b) Broker, reply to the sender\n\n")
	fmt.Printf("Each connection in a group of its own, connections alternating between gw-1 and gw-2; " +
		"it sends \"echo <payload>\" and reads the worker's one reply.\n\n")
	fmt.Println("| conns | msg/s | median RTT | p99 RTT | msg/s vs echo (same C) | median RTT vs echo |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		if c.kind == kindSender {
			s, base := res.cells[c], res.cells[cellSpec{kindEcho, c.n}]
			fmt.Printf("| %d | %.0f | %s | %s | %s | %s |\n", c.n, s.rate, ms(s.p50), ms(s.p99),
				ratio(s.rate, base.rate), ratio(float64(s.p50), float64(base.p50)))
		}
	}

	fmt.Printf("\n## (c) Broker, group edits\n\n")
	fmt.Printf("G groups of %d members, members alternating between gw-1 and gw-2. One member per group "+
		"sends \"set <payload>\" and waits for its ack and its own copy (the edit round trip); the "+
		"other %d read. Deliveries are the copies received by all %d members (the sender's own "+
		"included) in the measured time.\n\n", groupSize, groupSize-1, groupSize)
	fmt.Println("| groups | conns | edits/s | deliveries/s | median edit RTT | p99 edit RTT | edits/s vs echo (C = G) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		if c.kind == kindGroup {
			s, base := res.cells[c], res.cells[cellSpec{kindEcho, c.n}]
			fmt.Printf("| %d | %d | %.0f | %.0f | %s | %s | %s |\n", c.n, c.n*groupSize, s.rate, s.deliveries,
				ms(s.p50), ms(s.p99), ratio(s.rate, base.rate))
		}
	}
	fmt.Println()
	if len(res.mismatches) == 0 {
		fmt.Printf("Delivery check: passed. In every round each of the %d readers received exactly as many "+
			"copies as its sender sent edits (%d edits, %d copies, warm-up included).\n",
			res.readers, res.edits, res.copies)
		return
	}
	fmt.Printf("**ERROR: delivery check FAILED** for %d of %d readers (%d edits sent, %d copies received, "+
		"after a drain of %v):\n\n", len(res.mismatches), res.readers, res.edits, res.copies, drainTimeout)
	for _, m := range res.mismatches {
		fmt.Printf("- %s\n", m)
	}
}
