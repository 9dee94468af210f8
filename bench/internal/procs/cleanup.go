// Package procs holds what the comparison programs of the bench module share about the
// processes they run: a registry of cleanups (stopping the servers started, removing
// temporary files) run once at the end, on error paths and on SIGINT/SIGTERM; the signals
// a child server stops on; and a parent-death signal, so that no child outlives its
// benchmark.
package procs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

var (
	mu       sync.Mutex // guards cleanups
	cleanups []func()
	running  sync.Mutex // held while RunCleanups runs them
)

// AtCleanup registers f to run at the next RunCleanups; the last registered runs first.
func AtCleanup(f func()) {
	mu.Lock()
	cleanups = append(cleanups, f)
	mu.Unlock()
}

// RunCleanups runs the registered cleanups, last registered first, and forgets them, so
// that each runs once. A call made while another runs waits until that one has finished:
// a signal arriving during the final cleanups does not exit before they are done.
func RunCleanups() {
	running.Lock()
	defer running.Unlock()
	mu.Lock()
	fs := cleanups
	cleanups = nil
	mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// ExitOnSignal makes the first SIGINT or SIGTERM call announce with the signal (to say on
// stderr what happens), run the cleanups and exit the program with code.
func ExitOnSignal(code int, announce func(os.Signal)) {
	sig := make(chan os.Signal, 1)
	NotifyStop(sig)
	go func() {
		s := <-sig
		announce(s)
		RunCleanups()
		os.Exit(code)
	}()
}

// NotifyStop relays to c the signals a server stops on: SIGINT and SIGTERM.
func NotifyStop(c chan<- os.Signal) { signal.Notify(c, os.Interrupt, syscall.SIGTERM) }

// Logf prints a line on stderr: format and args as for fmt.Printf, then a newline.
func Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// StartChild re-executes this program with "-child mode" and args, its stderr going to
// ours, killed if this process dies, and returns it started with its stdout to read.
func StartChild(mode string, args ...string) (*exec.Cmd, io.ReadCloser, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, append([]string{"-child", mode}, args...)...)
	cmd.Stderr = os.Stderr
	DieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return cmd, out, nil
}
