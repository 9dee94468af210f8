package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// IPCEnv is the environment variable that tells a child sibling which inherited file
// descriptor is its link to the relay.
const IPCEnv = "GLOBALSESSIONS_IPC_FD"

// ChildConfig configures a sibling that runs as a child process of the relay (the config files'
// relay.proc_name).
type ChildConfig struct {
	// Command is the program and its arguments, e.g. ["global-sessions", "./sibling.conf"].
	// A program named "global-sessions" that is not on PATH is this executable.
	Command []string
	// Env is added to the child's environment.
	Env []string
	// StopTimeout is how long Close waits after SIGTERM before it sends SIGKILL. Zero means 5s.
	StopTimeout time.Duration
	// Client holds the link's settings (timeouts, heartbeat, backoff between restarts).
	// Addr and Dial are set by NewChildSibling.
	Client ClientConfig
	// Logger receives the child's starts and exits. Nil means no logging.
	Logger *slog.Logger
}

// ChildSibling runs the sibling as a child process and talks to it over a socket pair the
// child inherits. When the child dies the link breaks, and the client's reconnection starts
// a new child; Close stops it. It implements Backend, so it serves as RelayConfig.Lower.
type ChildSibling struct {
	*Client
	cfg ChildConfig
	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current child has been reaped.
	exited chan struct{}
	starts int
}

// NewChildSibling starts the child and connects to it. The first start happens in the
// background; requests wait for it up to their deadlines.
func NewChildSibling(cfg ChildConfig) (*ChildSibling, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("relay: child sibling: proc_name is empty")
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cs := &ChildSibling{cfg: cfg}
	ccfg := cfg.Client
	ccfg.Addr = "child:" + cfg.Command[0]
	ccfg.Dial = cs.dial
	if ccfg.Logger == nil {
		ccfg.Logger = cfg.Logger
	}
	if ccfg.Name == "" {
		ccfg.Name = "relay"
	}
	c, err := NewClient(ccfg)
	if err != nil {
		return nil, err
	}
	cs.Client = c
	return cs, nil
}

// dial (re)starts the child with one end of a new socket pair and returns the other.
func (cs *ChildSibling) dial(ctx context.Context, _ string) (net.Conn, error) {
	cs.stopChild() // a lost link means the child is gone or wedged: start afresh
	fds, err := socketpair()
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "relay-ipc")
	child := os.NewFile(uintptr(fds[1]), "sibling-ipc")
	defer child.Close()
	defer parent.Close() // FileConn dups it

	prog := cs.cfg.Command[0]
	if _, err := exec.LookPath(prog); err != nil && prog == "global-sessions" {
		if self, serr := os.Executable(); serr == nil {
			prog = self
		}
	}
	cmd := exec.Command(prog, cs.cfg.Command[1:]...)
	cmd.Env = append(append(os.Environ(), cs.cfg.Env...), IPCEnv+"=3")
	cmd.ExtraFiles = []*os.File{child} // fd 3 in the child
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sibling %q: %w", cs.cfg.Command, err)
	}
	exited := make(chan struct{})
	cs.mu.Lock()
	cs.cmd, cs.exited = cmd, exited
	cs.starts++
	n := cs.starts
	cs.mu.Unlock()
	cs.cfg.Logger.Info("relay: started sibling child", "pid", cmd.Process.Pid, "command", cs.cfg.Command, "start", n)
	go func() {
		err := cmd.Wait()
		cs.cfg.Logger.Info("relay: sibling child exited", "pid", cmd.Process.Pid, "err", err)
		close(exited)
	}()
	nc, err := net.FileConn(parent)
	if err != nil {
		return nil, fmt.Errorf("sibling link: %w", err)
	}
	return nc, nil
}

// Pid returns the current child's process id, or 0.
func (cs *ChildSibling) Pid() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.cmd == nil || cs.cmd.Process == nil {
		return 0
	}
	select {
	case <-cs.exited:
		return 0
	default:
	}
	return cs.cmd.Process.Pid
}

// Starts returns how many times the child has been started.
func (cs *ChildSibling) Starts() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.starts
}

// stopChild ends the current child, if any: SIGTERM, then SIGKILL after StopTimeout.
func (cs *ChildSibling) stopChild() {
	cs.mu.Lock()
	cmd, exited := cs.cmd, cs.exited
	cs.cmd = nil
	cs.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(cs.cfg.StopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Close stops reconnecting and stops the child (the config files' stop_child).
func (cs *ChildSibling) Close() error {
	err := cs.Client.Close()
	cs.stopChild()
	return err
}

// InheritedLink returns the relay link a child sibling inherited (see IPCEnv), or nil
// when this process was not started as a child sibling.
func InheritedLink() (net.Conn, error) {
	v := os.Getenv(IPCEnv)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("relay: %s=%q is not a file descriptor", IPCEnv, v)
	}
	f := os.NewFile(uintptr(fd), "relay-ipc")
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("relay: inherited link fd %d: %w", fd, err)
	}
	return nc, nil
}
