package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

// child is a server process started by this program; it serves until its stdin closes.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	addr string
}

func spawn(role string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-child", role}, args...)...)
	cmd.Stderr = os.Stderr
	if role == "tier" && *flagProcs > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", *flagProcs))
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		in.Close()
		cmd.Wait()
		return nil, fmt.Errorf("%s server did not start: %w", role, err)
	}
	return &child{cmd: cmd, in: in, addr: strings.TrimSpace(line)}, nil
}

func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// serve runs a child role until stdin closes.
func serve(role string) error {
	dir, err := os.MkdirTemp(tableDir(), "tiercompare")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	switch role {
	case "echo":
		return serveEcho()
	case "tier":
		return serveTier(dir)
	}
	return fmt.Errorf("unknown role %q", role)
}

func tableDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// serveTier runs a relay, its sibling in process, and the relief servers the flags ask for.
func serveTier(dir string) error {
	table := func(name string, records int) sessioncache.Config {
		// Prefault: the tables' pages are in memory from the start, so the first round
		// measures what the others do rather than the first writes to fresh pages.
		return sessioncache.Config{Path: filepath.Join(dir, name+".table"), Create: true, ElementCount: records,
			RecordSize: keySize + valueSize, Prefault: true}
	}
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Table: table("relay", relayRecs)})
	if err != nil {
		return err
	}
	defer r.Close()
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer sib.Close()
	r.SetLower(sib)
	ctx := context.Background()
	var servers []*relief.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	start := func(kind string, n, records int) error {
		for i := range n {
			s, err := relief.New(relief.Config{Kind: kind, ID: fmt.Sprintf("%s-%d", kind, i),
				Sibling: relay.ClientConfig{Addr: sib.Addr().String()}, Memory: table(fmt.Sprintf("%s-%d", kind, i), records)})
			if err != nil {
				return err
			}
			servers = append(servers, s)
			if err := s.Start(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if err := start(relief.Expansion, *flagExp, 4*(*flagKeys)); err != nil {
		return err
	}
	if err := start(relief.Aging, *flagAging, 4*(*flagKeys)); err != nil {
		return err
	}
	// TIERCOMPARE_CPUPROFILE profiles the tier with relief; TIERCOMPARE_CPUPROFILE_BARE the
	// one without.
	profile := os.Getenv("TIERCOMPARE_CPUPROFILE")
	if *flagExp == 0 {
		profile = os.Getenv("TIERCOMPARE_CPUPROFILE_BARE")
	}
	if p := profile; p != "" && (*flagExp > 0 || *flagAging == 0) {
		f, err := os.Create(p)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	// TIERCOMPARE_MEMPROFILE writes the allocations of the tier with relief (_BARE: without)
	// when it stops.
	memProfile := os.Getenv("TIERCOMPARE_MEMPROFILE")
	if *flagExp == 0 {
		memProfile = os.Getenv("TIERCOMPARE_MEMPROFILE_BARE")
	}
	if memProfile != "" && (*flagExp > 0 || *flagAging == 0) {
		runtime.MemProfileRate = 4096
		defer func() {
			if f, err := os.Create(memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	fmt.Println(r.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// The sizes of a relay get of a 32-byte key on "auths" and of its answer with a 384-byte
// value, each with its length prefix.
const (
	getSize    = 4 + wire.HeaderSize + 5 + 32
	answerSize = 4 + wire.HeaderSize + 384
)

// serveEcho answers each getSize-byte request (a relay get's size) with an answerSize-byte reply (the
// size of the relay's answer to it).
func serveEcho() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, reply := make([]byte, getSize), make([]byte, answerSize)
				binary.BigEndian.PutUint32(reply, answerSize-4)
				for {
					if _, err := io.ReadFull(c, req); err != nil {
						return
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// rawRoundTrips measures n round trips of the echo's sizes on one connection.
func rawRoundTrips(addr string, n int) ([]time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req, reply := make([]byte, getSize), make([]byte, answerSize)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return nil, errors.Join(errors.New("echo"), err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}
