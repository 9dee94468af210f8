// Package chaos is a fault-injection test of the whole session tier, run as real
// processes on loopback. It has no code outside its tests.
//
// TestChaos builds cmd/global-sessions and starts a relay (with its sibling as a child
// process), two expansion and two aging relief servers (the aging ones on durable logs with
// sync "always", the expansion ones keeping an entry 20 s at most, less than most of the
// workload's lifetimes), and three front-end hosts. A host is this test binary re-executed in host
// mode: a sessioncache.Manager on a table of its own with a relay.Client, driven over a
// small HTTP control listener on 127.0.0.1. Each host reaches the relay through a TCP proxy
// run by the test, so the test can cut a host off.
//
// Clients Set, Get and Delete keys (session ids; some are set again and deleted) on random
// hosts and record every call with its start, end and result, while a fault loop SIGKILLs
// a random process (a host, the relay, the sibling child, a relief server) every 0.5 to 3
// seconds and restarts it after a random pause, and cuts random hosts off the relay for 1
// to 10 seconds (half of the cuts close the host's connections, half go silent: bytes stop
// flowing and only heartbeats notice). Every fault goes to a fault log with timestamps.
//
// After healing everything and waiting for every process to be connected again, the test
// checks the history:
//
//   - lost: a key whose last Set was acknowledged, not deleted afterwards and not expired
//     must be readable with that value from a fresh host process (a new table);
//   - resurrected: no Get that began after an acknowledged Delete of the key (plus an
//     allowance: -chaos.stale, or -chaos.stalefor when the reading host was cut off or down
//     around the Delete) returned a value the Delete removed, and a fresh host finds no
//     deleted key;
//   - corrupt: no Get returned a value that was never written under its key;
//   - missed: no Get during the run found nothing while an acknowledged Set of the key
//     stood (not deleted since, not expired): a host that cannot answer for sure returns
//     an error, never "not found", which would read as a logout;
//   - expired shadow: no Get returned a version older than one an acknowledged Set wrote
//     once that newer version had expired (a session set again with a shorter lifetime
//     stays ended);
//   - every table (hosts', relay's, relief's) passes Table.Verify once the processes stop.
//
// It also reports revocation latency (how long after a Delete returns other connected
// hosts' local tables still hold the key), other stale reads during the run (a version
// older than an acknowledged, unexpired Set wrote, past the allowance: the README's
// limitation while a key's aging servers are away), and each table's size, evictions and
// lock recoveries. A failure prints the first lost, resurrected, corrupt and missed keys
// with their histories and the faults around them (and expired-shadow reads).
//
// Short form (about 25 seconds of faults):
//
//	go test ./internal/chaos
//
// Long form, with the counts printed:
//
//	go test ./internal/chaos -run TestChaos -chaos.duration=10m -timeout 30m -v
//
// Validate the harness without faults (every count must be zero):
//
//	go test ./internal/chaos -run TestChaos -chaos.faults=false -v
//
// The seed of the workload and of the faults is logged; -chaos.seed=N repeats a run's
// choices (not its timing). -chaos.keep=true keeps the configs and every process's log
// (write bool flags with =true after the package argument). The hosts' and relief servers'
// tables hold every key of the run, so capacity eviction removes none; the relay's table
// holds 256 (-chaos.relay-records), so it evicts to the aging servers (whose logs are
// unbounded) and the hand-off of evictions is tested too; the report counts the
// evictions. -chaos.relay-records=0 sizes the relay's table to hold every key. The other
// knobs are the -chaos.* flags (go test ./internal/chaos -args -help lists them).
//
// The test runs on Linux only (the tables need /dev/shm and /proc). It runs one `go
// build` of cmd/global-sessions per run, in the module that holds this package.
package chaos
