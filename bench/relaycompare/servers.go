package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/globalsession/globalsession/bench/internal/benchpki"
	"github.com/globalsession/globalsession/bench/internal/procs"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
	"github.com/redis/go-redis/v9"
)

// ---- child processes (the program re-executed with -serve-relay or -serve-echo) ----

// waitStop blocks until stdin closes (the parent is done or died) or a termination signal.
func waitStop() {
	stop := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- struct{}{}
	}()
	sig := make(chan os.Signal, 1)
	procs.NotifyStop(sig)
	select {
	case <-stop:
	case <-sig:
	}
}

// tableDir is where the relay child puts its table: tmpfs when there is one.
func tableDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// serveRelay runs a relay (with TLS when certFile is set) until waitStop returns, printing
// its address on stdout, then closes it and removes its table file.
func serveRelay(certFile, keyFile string) error {
	path := filepath.Join(tableDir(), fmt.Sprintf("relaycompare-%d.table", os.Getpid()))
	cfg := relay.RelayConfig{
		Addr: "127.0.0.1:0",
		Table: sessioncache.Config{
			Path:         path,
			Create:       true,
			Replace:      true,
			ElementCount: 2 * *flagKeys,
			RecordSize:   *flagKeySize + *flagValueSize,
		},
	}
	if certFile != "" {
		tc, err := benchpki.ServerTLS(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	r, err := relay.NewRelay(cfg)
	if err != nil {
		_ = os.Remove(path) // the table may exist if listening failed; the name is ours
		return err
	}
	// RELAYCOMPARE_CPUPROFILE profiles the plain relay's process while it serves.
	if p := os.Getenv("RELAYCOMPARE_CPUPROFILE"); p != "" && certFile == "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println(r.Addr().String())
	waitStop()
	cerr := r.Close()
	if err := relay.RemoveState(r.Table().Path()); err != nil {
		return err
	}
	return cerr
}

// serveEcho answers each length-prefixed message with one message whose body length is
// the request body's first 4 bytes (big-endian): one round trip of chosen sizes, no work.
func serveEcho() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echoConn(c)
		}
	}()
	waitStop()
	return ln.Close()
}

func echoConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	var hdr [4]byte
	var req, reply []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 4 || n > 1<<20 {
			return
		}
		if cap(req) < int(n) {
			req = make([]byte, n)
		}
		req = req[:n]
		if _, err := io.ReadFull(br, req); err != nil {
			return
		}
		rn := binary.BigEndian.Uint32(req)
		if rn > 1<<20 {
			return
		}
		if cap(reply) < 4+int(rn) {
			reply = make([]byte, 4+rn)
		}
		reply = reply[:4+rn]
		binary.BigEndian.PutUint32(reply, rn)
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// ---- parent side ----

// child is a re-executed copy of this program serving something until its stdin closes.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	once  sync.Once
}

// startChild re-executes this program with args and reads the address it prints.
func startChild(name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case c.addr = <-line:
	case <-time.After(10 * time.Second):
	}
	if c.addr == "" {
		c.stop()
		return nil, fmt.Errorf("%s did not report its address", name)
	}
	return c, nil
}

// stop closes the child's stdin and waits for it to clean up and exit; it kills the child
// if that takes more than 10 seconds. It is idempotent.
func (c *child) stop() {
	c.once.Do(func() {
		c.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(os.Stderr, "relaycompare: %s exited: %v\n", c.name, err)
			}
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "relaycompare: %s did not stop, killing it\n", c.name)
			_ = c.cmd.Process.Kill()
			<-done
		}
	})
}

// redisServer is a redis-server process on a free loopback port.
type redisServer struct {
	cmd     *exec.Cmd
	addr    string
	version string
	out     bytes.Buffer
	exited  chan struct{}
	once    sync.Once
}

var errNoRedis = errors.New("redis-server not found in PATH; install it, e.g. `apt-get install -y redis-server`, and run again")

// startRedis starts redis-server without persistence in dir and waits until it answers PING.
func startRedis(dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedis
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &redisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	procs.DieWithParent(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	rc := redis.NewClient(redisOptions(s.addr, 1))
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := rc.Ping(ctx).Err()
		if err == nil {
			s.version = redisVersion(ctx, rc)
		}
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("redis-server exited at start:\n%s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server did not answer PING within 10s: %v\n%s", err, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func redisVersion(ctx context.Context, rc *redis.Client) string {
	info, err := rc.Info(ctx, "server").Result()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// stop kills redis-server and waits for it. It is idempotent.
func (s *redisServer) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisBenchmark runs redis-benchmark, the C client that ships with Redis, against the
// server at addr for every cell (SET first, which also stores the keys its GETs read), with
// the cell's requests in flight spread over its connections: the ceiling of a client.
func redisBenchmark(m *measurements, addr string) error {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	for _, conns := range connCounts {
		for _, inflight := range inflightSizes {
			for _, op := range []opKind{opSet, opGet} {
				c := cell{op, conns, inflight}
				clients := min(conns, inflight)
				out, err := exec.Command(bin, "-h", host, "-p", port, "-t", strings.ToLower(op.String()),
					"-n", strconv.Itoa(max(m.ops[c], 10000)), "-d", strconv.Itoa(*flagValueSize), "-r", strconv.Itoa(*flagKeys),
					"-c", strconv.Itoa(clients), "-P", strconv.Itoa(max(inflight/clients, 1)), "-q", "--csv").Output()
				if err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
				rate, err := benchmarkRate(out, op.String())
				if err != nil {
					return err
				}
				m.bench[c] = rate
				progress("redis-benchmark %s conns=%d in-flight=%d: %.0f ops/s", op, conns, inflight, rate)
			}
		}
	}
	return nil
}

// benchmarkRate finds the requests per second of test in redis-benchmark's CSV output.
func benchmarkRate(out []byte, test string) (float64, error) {
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) >= 2 && strings.Trim(f[0], `"`) == test {
			return strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		}
	}
	return 0, fmt.Errorf("no %s line in redis-benchmark's output: %q", test, out)
}
