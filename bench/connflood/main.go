// Command connflood measures what hostile connections cost a relay: it starts a relay in a
// child process, opens connections that say hello and then announce a frame of the largest
// size without sending it (or, with -sent, sending only that much of it), and connections
// that never say hello, and reports how much the relay's resident memory grew while they
// are all open.
//
//	cd bench && go run ./connflood
//	cd bench && go run ./connflood -sent 524288   # half of each 1 MiB frame: the frame budget
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

var (
	flagConns  = flag.Int("conns", 2000, "hostile connections of each kind")
	flagSent   = flag.Int("sent", 0, "bytes of each announced frame's body that are sent (the rest never is)")
	flagBudget = flag.Int64("budget", 0, "the relay's frame budget in bytes (0: its default, 64 MiB)")
	flagChild  = flag.String("child", "", "internal: run as the relay")
	flagDir    = flag.String("dir", "", "internal: the relay's directory")
)

func main() {
	flag.Parse()
	if *flagChild != "" {
		serveRelay()
	}
	procs.ExitOnSignal(1, func(s os.Signal) { procs.Logf("connflood: %v", s) })
	err := run()
	procs.RunCleanups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "connflood:", err)
		os.Exit(1)
	}
}

// serveRelay runs a relay with its defaults on a table in *flagDir, prints its address and
// serves until it is killed; it exits if the relay cannot start.
func serveRelay() {
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", ServerOptions: relay.ServerOptions{FrameBudget: *flagBudget},
		Table: sessioncache.Config{Path: filepath.Join(*flagDir, "relay.table"), Create: true, ElementCount: 1000, RecordSize: 512}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(r.Addr())
	select {}
}

func run() error {
	dir, err := os.MkdirTemp("", "connflood")
	if err != nil {
		return err
	}
	procs.AtCleanup(func() { os.RemoveAll(dir) })
	cmd, out, err := procs.StartChild("relay", "-dir", dir, "-budget", strconv.FormatInt(*flagBudget, 10))
	if err != nil {
		return err
	}
	procs.AtCleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the relay did not start: %w", err)
	}
	addr = strings.TrimSpace(addr)
	pid := cmd.Process.Pid
	before := rss(pid)

	hello, err := wire.Append(nil, &wire.Frame{Op: wire.OpHello, ID: 1, Value: []byte{wire.Version}})
	if err != nil {
		return err
	}
	announce := binary.BigEndian.AppendUint32(append([]byte(nil), hello...), wire.DefaultMaxFrame)
	var conns []net.Conn
	procs.AtCleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range 2 * *flagConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			if _, err := c.Write(announce); err != nil {
				return err
			}
		}
	}
	sendBodies(conns)
	// Let the relay read what was sent (well within its 10 s hello deadline).
	time.Sleep(time.Second)
	after := rss(pid)
	open := 0 // connections the relay has not closed: a read finds data or times out
	buf := make([]byte, 4096)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(buf)
		if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
			open++
		}
	}
	fmt.Printf("# hostile connections against a relay (%d CPUs, %s)\n\n", runtime.NumCPU(), runtime.Version())
	fmt.Println("| connections | relay RSS before | with them open | growth | per connection | still open |")
	fmt.Println("|--:|--:|--:|--:|--:|--:|")
	grew := after - before
	fmt.Printf("| %d hello + 1 MiB announced (%d bytes of it sent), %d silent | %.1f MB | %.1f MB | %.1f MB | %.1f KiB | %d |\n",
		*flagConns, max(*flagSent, 0), *flagConns, mb(before), mb(after), mb(grew), float64(grew)/1024/float64(len(conns)), open)
	fmt.Printf("\nTarget: growth under 100 MB for 2,000 connections: %.1f MB.\n", mb(grew))
	return nil
}

// sendBodies writes *flagSent bytes of the announced frame on every other connection, at
// once, each for at most 5 s (a relay that does not read them leaves them in the kernel).
func sendBodies(conns []net.Conn) {
	if *flagSent <= 0 {
		return
	}
	body := make([]byte, min(*flagSent, wire.DefaultMaxFrame-1))
	var wg sync.WaitGroup
	for i := 0; i < len(conns); i += 2 {
		wg.Go(func() {
			conns[i].SetWriteDeadline(time.Now().Add(5 * time.Second))
			conns[i].Write(body)
		})
	}
	wg.Wait()
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// rss returns the resident memory of process pid, in bytes, from /proc.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
