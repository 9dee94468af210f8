// Command quickstart runs the whole session tier on one machine and walks through what it
// does, printing each step:
//
//   - a relay with its sibling, one expansion and one aging relief server (in this process);
//   - host A: two front-end processes sharing one table (child processes of this one);
//   - host B: a front end with a table of its own (in this process).
//
// Host A logs alice in; its second process sees her session in the shared table; host B
// sees it too. A burst of new logins pushes her session out of every table, and it comes
// back from aging relief. She logs out on host B, and her session is gone everywhere.
//
//	go run ./examples/quickstart
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

// Small tables, so that a burst of logins overflows them.
const (
	frontRecords     = 64
	relayRecords     = 128
	expansionRecords = 128
	agingRecords     = 10000
	burst            = 1000
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "-frontend" {
		frontend(os.Args[2], os.Args[3])
		return
	}
	dir, err := os.MkdirTemp("", "quickstart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := func(name string, records int, create bool) sessioncache.Config {
		return sessioncache.Config{Path: filepath.Join(dir, name+".table"), Create: create, ElementCount: records, RecordSize: 256, Shards: 1}
	}

	step("start the tier: relay, sibling, expansion and aging relief")
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Table: table("relay", relayRecords, true)})
	check(err)
	defer r.Close()
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	check(err)
	defer sib.Close()
	r.SetLower(sib)
	var aging *relief.Server
	for _, k := range []struct {
		kind    string
		records int
	}{{relief.Expansion, expansionRecords}, {relief.Aging, agingRecords}} {
		s, err := relief.New(relief.Config{Kind: k.kind, ID: "quickstart-" + k.kind,
			Sibling: relay.ClientConfig{Addr: sib.Addr().String()}, Memory: table(k.kind, k.records, true)})
		check(err)
		check(s.Start(ctx, nil))
		defer s.Close()
		if k.kind == relief.Aging {
			aging = s
		}
	}
	fmt.Printf("  relay %s, sibling %s, relief servers: %d expansion, %d aging\n",
		r.Addr(), sib.Addr(), sib.ReliefOf(relief.Expansion), sib.ReliefOf(relief.Aging))

	step("host A: two processes on one table; host B: a table of its own")
	a1 := startFrontend(r.Addr().String(), table("hostA", frontRecords, true).Path, true)
	defer a1.stop()
	a2 := startFrontend(r.Addr().String(), table("hostA", frontRecords, true).Path, false)
	defer a2.stop()
	bc, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: "host-b"})
	check(err)
	defer bc.Close()
	b, err := sessioncache.New(table("hostB", frontRecords, true), bc)
	check(err)
	defer b.Close()
	fmt.Printf("  host A processes: pid %d (created the table), pid %d (attached)\n", a1.cmd.Process.Pid, a2.cmd.Process.Pid)

	step("host A (first process) logs alice in")
	fmt.Println("  ->", a1.do("set sid-alice alice"))
	step("host A (second process) reads its shared table: no network involved")
	fmt.Println("  ->", a2.do("local sid-alice"))
	step("host B reads the session (its relay subscription or a fall-through brings it)")
	v, err := b.Get(ctx, []byte("sid-alice"))
	fmt.Printf("  -> %s %v\n", v, errOrOK(err))

	step(fmt.Sprintf("a burst of %d new logins on host A pushes alice out of every table", burst))
	fmt.Println("  ->", a1.do(fmt.Sprintf("fill burst %d", burst)))
	_, err = r.Table().Get([]byte("sid-alice"))
	fmt.Printf("  relay's table: %v\n", errOrOK(err))
	fmt.Println("  host A's table:", a2.do("local sid-alice"))
	_, err = b.Table().Get([]byte("sid-alice"))
	fmt.Printf("  host B's table: %v\n", errOrOK(err))

	// The relay hands its evictions to aging relief in the background; wait (bounded) for
	// alice's to arrive.
	for i := 0; i < 500; i++ {
		if _, err := aging.Store().Get(ctx, []byte("sid-alice")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	step("host B asks for alice's session: it comes back from aging relief")
	hits := aging.Stats().Hits
	v, err = b.Get(ctx, []byte("sid-alice"))
	fmt.Printf("  -> %s %v (aging relief answered %d lookup)\n", v, errOrOK(err), aging.Stats().Hits-hits)

	step("alice logs out on host B: her session is gone everywhere")
	check(b.Delete(ctx, []byte("sid-alice")))
	fmt.Println("  host A (second process):", a2.do("get sid-alice"))
	// The relay hands the deletion to relief from its outbox, in the background; wait
	// (bounded) for aging relief to hold the tombstone.
	for i := 0; i < 500; i++ {
		if e, _ := aging.Store().Get(ctx, []byte("sid-alice")); e.Deleted {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = aging.Store().Get(ctx, []byte("sid-alice"))
	fmt.Printf("  aging relief's store: %v\n", errOrOK(err))
	_, err = r.Lookup([]byte("sid-alice"))
	fmt.Printf("  relay's table: %v\n", errOrOK(err))
}

func step(s string) { fmt.Println("\n== " + s) }

func errOrOK(err error) string {
	switch {
	case err == nil:
		return "(found)"
	case errors.Is(err, sessioncache.ErrNotFound):
		return "not found"
	}
	return err.Error()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// frontend is a host-A process: a Manager on the shared table, driven by stdin commands.
func frontend(relayAddr, tablePath string) {
	ctx := context.Background()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: relayAddr, Name: fmt.Sprintf("host-a-%d", os.Getpid())})
	check(err)
	defer c.Close()
	create := os.Getenv("QUICKSTART_CREATE") == "1"
	m, err := sessioncache.New(sessioncache.Config{Path: tablePath, Create: create, ElementCount: frontRecords, RecordSize: 256, Shards: 1}, c)
	check(err)
	defer m.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var v []byte
		switch f[0] {
		case "set":
			err = m.Set(ctx, []byte(f[1]), []byte(f[2]), time.Hour)
		case "get":
			v, err = m.Get(ctx, []byte(f[1]))
		case "local":
			v, err = m.Table().Get([]byte(f[1]))
		case "fill":
			var n int
			fmt.Sscan(f[2], &n)
			for i := 0; i < n && err == nil; i++ {
				err = m.Set(ctx, fmt.Appendf(nil, "%s-%d", f[1], i), []byte("someone"), time.Hour)
			}
		}
		switch {
		case err != nil:
			fmt.Println(errOrOK(err))
		case v != nil:
			fmt.Printf("%s (found, pid %d)\n", v, os.Getpid())
		default:
			fmt.Printf("ok (pid %d)\n", os.Getpid())
		}
	}
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startFrontend(relayAddr, tablePath string, create bool) *child {
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, "-frontend", relayAddr, tablePath)
	if create {
		cmd.Env = append(os.Environ(), "QUICKSTART_CREATE=1")
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	check(err)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if c.line() != "ready" {
		log.Fatal("front end did not start")
	}
	return c
}

func (c *child) line() string {
	if !c.out.Scan() {
		log.Fatal("front end process ended")
	}
	return c.out.Text()
}

func (c *child) do(cmd string) string {
	fmt.Fprintln(c.in, cmd)
	return c.line()
}

func (c *child) stop() {
	c.in.Close()
	c.cmd.Wait()
}
