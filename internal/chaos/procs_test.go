//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logSink is where one logical process (all its incarnations) writes its output: a file in
// the run's directory, and the last lines in memory for the report.
type logSink struct {
	mu   sync.Mutex
	f    *os.File
	t0   time.Time
	tail []string
	next int
	full bool
}

const tailLines = 40

func newLogSink(path string, t0 time.Time) (*logSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logSink{f: f, t0: t0, tail: make([]string, tailLines)}, nil
}

func (l *logSink) line(stream, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s = fmt.Sprintf("%s %s %s", fmtT(time.Since(l.t0)), stream, s)
	if l.f != nil {
		fmt.Fprintln(l.f, s)
	}
	l.tail[l.next] = s
	l.next = (l.next + 1) % len(l.tail)
	l.full = l.full || l.next == 0
}

// lastLines returns the last lines written, oldest first.
func (l *logSink) lastLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]string(nil), l.tail[:l.next]...)
	}
	return append(append([]string(nil), l.tail[l.next:]...), l.tail[:l.next]...)
}

func (l *logSink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// proc is one incarnation of a process the test started. Its stdout and stderr are pipes
// the test reads line by line: into its log, through onLine, and against waiters.
type proc struct {
	name   string
	pid    int
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process has been reaped
	log    *logSink
	onLine func(stream, line string)

	mu      sync.Mutex
	waiters []*waiter
	exited  bool
}

// waiter waits for the first line of a stream matching re. Its channel gets the
// submatches, or is closed without a value when the process ends first.
type waiter struct {
	stream string // "out" or "err"
	re     *regexp.Regexp
	ch     chan []string
}

func newWaiter(stream, re string) *waiter {
	return &waiter{stream: stream, re: regexp.MustCompile(re), ch: make(chan []string, 1)}
}

// wait returns the matching line's submatches, or an error when the process ended first
// or timeout passed.
func (w *waiter) wait(timeout time.Duration) ([]string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-w.ch:
		if !ok {
			return nil, fmt.Errorf("the process ended before printing a line matching %q", w.re)
		}
		return m, nil
	case <-timer.C:
		return nil, fmt.Errorf("no line matching %q within %v", w.re, timeout)
	}
}

// startProc starts path with args and env added to the test's environment. The waiters
// are registered before the process starts, so none of its lines can be missed.
func startProc(name string, log *logSink, path string, args, env []string, onLine func(stream, line string), waiters ...*waiter) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	// The kernel kills it if the test dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: log, onLine: onLine, waiters: waiters}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p.pid = cmd.Process.Pid
	log.line("---", fmt.Sprintf("started %s pid %d: %s %s", name, p.pid, path, strings.Join(args, " ")))
	go p.read("out", outR)
	go p.read("err", errR)
	go func() {
		err := cmd.Wait()
		log.line("---", fmt.Sprintf("%s pid %d exited: %v", name, p.pid, err))
		p.mu.Lock()
		p.exited = true
		for _, w := range p.waiters {
			close(w.ch)
		}
		p.waiters = nil
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// read handles the lines of one stream until every writer has closed it (a child the
// process started may hold it after the process is gone).
func (p *proc) read(stream string, r *os.File) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		if s = strings.TrimRight(s, "\r\n"); s != "" {
			p.log.line(stream, s)
			if p.onLine != nil {
				p.onLine(stream, s)
			}
			p.match(stream, s)
		}
		if err != nil {
			return
		}
	}
}

func (p *proc) match(stream, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		if w.stream == stream {
			if m := w.re.FindStringSubmatch(s); m != nil {
				w.ch <- m
				continue
			}
		}
		keep = append(keep, w)
	}
	p.waiters = keep
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill() error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s pid %d not reaped 10s after SIGKILL", p.name, p.pid)
	}
}

// stop sends SIGTERM, then SIGKILL after timeout, and waits for the process to be reaped.
func (p *proc) stop(timeout time.Duration) {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(timeout):
	}
	p.log.line("---", fmt.Sprintf("%s pid %d did not stop within %v of SIGTERM; SIGKILL", p.name, p.pid, timeout))
	_ = p.kill()
}

// childPids returns the pids of pid's children: from /proc/PID/task/*/children where the
// kernel has it, otherwise by scanning every process's parent in /proc/*/stat.
func childPids(pid int) []int {
	var out []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if len(files) > 0 {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(s); err == nil {
					out = append(out, n)
				}
			}
		}
		return out
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPid(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// parentPid reads the parent of pid from /proc/PID/stat (the field after the command,
// which may itself hold spaces and parentheses).
func parentPid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// cmdlineHas reports whether the live process pid has arg among its arguments: a check
// that a pid still names the process the test means before it signals it.
func cmdlineHas(pid int, arg string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, a := range bytes.Split(b, []byte{0}) {
		if string(a) == arg {
			return true
		}
	}
	return false
}

// freePort returns a loopback port that was free a moment ago, for a process that must
// come back on the same port when it restarts.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
