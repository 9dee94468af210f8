package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
)

// A child announces itself with one line on stdout, "<WORD> <value>": "LISTEN host:port"
// from the relay and the echo server, "LISTEN http://host:port" from a gateway instance,
// "READY <name>" from a worker once it has joined the queue. Then it serves until SIGTERM.

// announce prints a child's announcement line.
func announce(word, value string) { fmt.Printf("%s %s\n", word, value) }

// waitStop blocks a child until it is told to stop.
func waitStop() {
	sig := make(chan os.Signal, 1)
	procs.NotifyStop(sig)
	<-sig
}

// child is a server process: this program re-executed with -child.
type child struct {
	name     string // "relay", "gateway gw-1", "worker w1", "echo"
	cmd      *exec.Cmd
	value    string        // what it announced
	done     chan struct{} // closed once it has exited
	err      error         // its exit status, once done is closed
	stopping atomic.Bool   // set by stop: its exit is expected
}

func (c *child) String() string { return fmt.Sprintf("%s (pid %d)", c.name, c.cmd.Process.Pid) }

// A child that exits while nobody stopped it fails the run: died is closed and diedErr
// names the first such child.
var (
	died     = make(chan struct{})
	diedOnce sync.Once
	diedErr  error
)

func markDied(err error) {
	diedOnce.Do(func() {
		diedErr = err
		procs.Logf("ERROR: %v", err)
		close(died)
	})
}

// childFailure returns the error of the first child that died, or nil while all live.
func childFailure() error {
	select {
	case <-died:
		return diedErr
	default:
		return nil
	}
}

// blame returns the error of a dead child in place of err (which is likely its
// consequence), or err when every child still lives after a short grace: a failure seen
// by the load generator can come before this process has noticed the exit behind it.
func blame(err error) error {
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-died:
		return diedErr
	case <-t.C:
		return err
	}
}

// startChild re-executes this program with -child mode and waits, at most 10s, for its
// announcement, which must start with word. The child is stopped at cleanup.
func startChild(name, mode, word string, args ...string) (*child, error) {
	cmd, out, err := procs.StartChild(mode, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	procs.AtCleanup(c.stop)
	line := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		// Read the announcement, then drain stdout until the child exits: Wait must
		// not run before the reads are over.
		defer close(drained)
		r := bufio.NewReader(out)
		s, _ := r.ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		<-drained
		c.err = cmd.Wait()
		close(c.done)
		if !c.stopping.Load() {
			status := "exit status 0"
			if c.err != nil {
				status = c.err.Error()
			}
			markDied(fmt.Errorf("child %s exited unexpectedly: %s", c, status))
		}
	}()
	select {
	case s := <-line:
		v, ok := strings.CutPrefix(strings.TrimSpace(s), word+" ")
		if !ok || v == "" {
			c.stop() // bounded: it printed something else, or nothing and is ending
			return nil, fmt.Errorf("child %s did not announce itself (got %q, exit: %v)", c, strings.TrimSpace(s), c.err)
		}
		c.value = v
		return c, nil
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("child %s announced nothing within 10s", c)
	}
}

// stop asks the child to end with SIGTERM and kills it if it has not within 5s.
func (c *child) stop() {
	c.stopping.Store(true)
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		procs.Logf("%s did not stop within 5s: killing it", c)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
