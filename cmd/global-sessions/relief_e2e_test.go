package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
)

// TestReliefEndToEnd runs the whole tier as real processes: a relay whose sibling is its
// child process, two expansion and two aging relief servers (the aging ones on durable
// logs), and two front-end hosts with small tables. It fills far past every table's
// capacity, checks nothing is lost, kills one relief server of each kind, and restarts the
// aging one from its log.
func TestReliefEndToEnd(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) { reliefEndToEnd(t, replicas) })
	}
}

func reliefEndToEnd(t *testing.T, replicas int) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sibling.conf"), fmt.Sprintf(`{
    "half_edge" : true, "auth_path" : "auths", "port" : 0, "address" : "127.0.0.1",
    "replicas" : %d,
    "cache" : { "token_path" : "./relay.token", "am_initializer" : false, "seed" : 1, "record_size" : 256, "el_count" : 128 }
}`, replicas))
	writeFile(t, filepath.Join(dir, "relay.conf"), fmt.Sprintf(`{
    "edge_supported_relay" : true, "auth_path" : "auths", "port" : 0, "address" : "127.0.0.1",
    "path_types" : { "auths" : {
        "relay" : { "proc_name" : ["global-sessions", %q] },
        "cache" : { "token_path" : "./relay.token", "am_initializer" : true, "seed" : 1, "record_size" : 256, "el_count" : 128 }
    } }
}`, filepath.Join(dir, "sibling.conf")))
	t.Cleanup(func() { relay.RemoveState(sectionPath(filepath.Join(dir, "relay.token"), 1)) })
	mainEnv := []string{"GS_MAIN=1"}
	r := start(t, mainEnv, filepath.Join(dir, "relay.conf"))
	addr := r.expect(t, `^relay: serving front ends on (\S+)`)[1]
	sibAddr := r.expect(t, `^sibling: serving pressure-relief servers on (\S+)`)[1]
	sibHost, sibPort := sibAddr[:strings.LastIndexByte(sibAddr, ':')], sibAddr[strings.LastIndexByte(sibAddr, ':')+1:]

	reliefConf := func(kind, id string) string {
		path := filepath.Join(dir, id+".conf")
		store := fmt.Sprintf(`"lru" : { "manage_section" : true, "cache" : { "path" : %q, "seed" : 1, "record_size" : 256, "el_count" : 512 } },`,
			filepath.Join(dir, id+".table"))
		if kind == "aging" {
			store = `"lru" : { "manage_section" : true, "cache" : { "seed" : 1 } },`
		}
		log := ""
		if kind == "aging" {
			log = fmt.Sprintf(`, "log" : { "path" : %q, "sync" : "always" }`, filepath.Join(dir, id+".log"))
		}
		writeFile(t, path, fmt.Sprintf(`{
    "full_edge" : true,
    %s
    "relief" : { "kind" : %q, "id" : %q %s },
    "message_relay" : { "auth_path" : "auths", "address" : %q, "port" : %s }
}`, store, kind, id, log, sibHost, sibPort))
		return path
	}
	relief := map[string]*proc{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay stderr:\n%s", r.stderr)
			for id, p := range relief {
				t.Logf("%s stderr:\n%s", id, p.stderr)
			}
		}
	})
	startRelief := func(kind, id string) {
		p := start(t, mainEnv, reliefConf(kind, id))
		p.expect(t, `^relief: `+kind+` server "`+id+`" subscribed to the sibling`)
		relief[id] = p
	}
	startRelief("expansion", "exp-1")
	startRelief("expansion", "exp-2")
	startRelief("aging", "aging-1")
	startRelief("aging", "aging-2")

	fe := func(name string) *proc {
		p := start(t, []string{"GS_FRONTEND=1", "GS_RELAY=" + addr, "GS_TABLE=" + filepath.Join(dir, name+".table"), "GS_CREATE=1", "GS_RECORDS=64"})
		require.Equal(t, "ready", p.line(t))
		return p
	}
	a, b := fe("hostA"), fe("hostB")

	// 800 sessions through tables of 64 (front ends) and 128 (relay) records.
	const n = 800
	require.Equal(t, "ok", a.do(t, fmt.Sprintf("fill s %d", n)))
	// Hand-downs to relief are asynchronous: read until everything is there (bounded).
	waitFor(t, b, fmt.Sprintf("check s %d", n), "value missing=0")
	require.Equal(t, "value missing=0", a.do(t, fmt.Sprintf("check s %d", n)))

	// Kill one relief server of each kind.
	for _, id := range []string{"exp-1", "aging-1"} {
		require.NoError(t, relief[id].cmd.Process.Signal(syscall.SIGKILL))
		relief[id].cmd.Wait()
	}
	// Give the sibling a moment to see the dead connections: a check made while it still
	// counts them would only time out on them. Wait for the answer to settle.
	var got string
	for range 50 {
		got = b.do(t, fmt.Sprintf("check s %d", n))
		t.Log("after the kills:", got)
		if got2 := b.do(t, fmt.Sprintf("check s %d", n)); got2 == got {
			break
		}
	}
	if replicas == 2 {
		assert.Equal(t, "value missing=0", got, "every key has a replica on a live server")
	} else {
		var missing int
		fmt.Sscanf(got, "value missing=%d", &missing)
		assert.Positive(t, missing, "with one replica the dead servers' keys are missing")
		assert.Less(t, missing, n, "only the dead servers' keys are missing")
	}

	// The aging server comes back from its durable log: its keys are back.
	startRelief("aging", "aging-1")
	waitFor(t, b, fmt.Sprintf("check s %d", n), "value missing=0")
}
