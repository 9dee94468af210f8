//go:build linux

package chaos

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	flagDuration = flag.Duration("chaos.duration", 25*time.Second, "how long the workload runs (8s with -short unless set)")
	flagSeed     = flag.Int64("chaos.seed", 0, "seed of the workload and the faults; 0 picks one, which is logged")
	flagFaults   = flag.Bool("chaos.faults", true, "inject faults; false runs the same workload without any, to validate the harness")
	flagClients  = flag.Int("chaos.clients", 6, "concurrent workload clients")
	flagStale    = flag.Duration("chaos.stale", time.Second, "how long after a Delete returns a connected host may still return the key")
	flagStaleFor = flag.Duration("chaos.stalefor", 5*time.Second, "how long after a Delete returns a host that was cut off or down around it may still return the key")
	flagReplicas = flag.Int("chaos.replicas", 2, "relief servers of each kind that hold each key (the sibling's replicas)")
	flagKeep     = flag.Bool("chaos.keep", false, "keep the configs and every process's log (the directory is logged)")
	flagFaultMin = flag.Duration("chaos.fault-min", 500*time.Millisecond, "shortest time between two faults")
	flagRelayRec = flag.Int("chaos.relay-records", 256, "el_count of the relay's table: small, so that it evicts to the aging servers and the hand-off of evictions is tested; 0 sizes it to hold every key")
	flagFaultMax = flag.Duration("chaos.fault-max", 3*time.Second, "longest time between two faults")
)

// TestMain runs the test binary as a front-end host when the test starts it as one.
func TestMain(m *testing.M) {
	if os.Getenv(envHost) == "1" {
		os.Exit(hostMain())
	}
	os.Exit(m.Run())
}
