package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/globalsession/globalsession/bench/internal/procs"
)

// topology is the set of servers of the run, as the load generator reaches them.
type topology struct {
	echoAddr string      // host:port of the echo server
	gateways []string    // base URLs of the two gateway instances
	header   http.Header // the Cookie header of the run's session
}

// tableDir is where the session tables go: tmpfs when there is one.
func tableDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// startTopology starts the relay, two gateway instances, the workers and the echo
// server, and logs in once.
func startTopology(workers int) (*topology, error) {
	dir, err := os.MkdirTemp(tableDir(), "brokercompare-")
	if err != nil {
		return nil, err
	}
	procs.AtCleanup(func() { os.RemoveAll(dir) }) // registered first: runs after the children stopped
	rel, err := startChild("relay", "relay", "LISTEN", "-table", filepath.Join(dir, "relay.table"))
	if err != nil {
		return nil, err
	}
	procs.Logf("relay on %s", rel.value)
	t := &topology{}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("gw-%d", i)
		gw, err := startChild("gateway "+name, "gateway", "LISTEN",
			"-relay", rel.value, "-name", name, "-table", filepath.Join(dir, name+".table"))
		if err != nil {
			return nil, err
		}
		procs.Logf("gateway %s on %s", name, gw.value)
		t.gateways = append(t.gateways, gw.value)
	}
	for i := 1; i <= workers; i++ {
		name := fmt.Sprintf("w%d", i)
		if _, err := startChild("worker "+name, "worker", "READY", "-relay", rel.value, "-name", name); err != nil {
			return nil, err
		}
	}
	procs.Logf("%d workers joined the queue", workers)
	echo, err := startChild("echo", "echo", "LISTEN")
	if err != nil {
		return nil, err
	}
	t.echoAddr = echo.value
	procs.Logf("echo on %s", echo.value)
	if t.header, err = login(t.gateways); err != nil {
		return nil, blame(err)
	}
	return t, nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// login logs in anonymously at the first instance and waits, at most 5s, until every
// instance knows the session (the others find it through the relay). It returns the
// Cookie header to send.
func login(gateways []string) (http.Header, error) {
	resp, err := httpClient.Post(gateways[0]+"/login/anonymous", "", nil)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login: %s", resp.Status)
	}
	var cookies []string
	for _, ck := range resp.Cookies() {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if len(cookies) == 0 {
		return nil, fmt.Errorf("login: no session cookie in the answer")
	}
	hdr := http.Header{"Cookie": {strings.Join(cookies, "; ")}}
	for _, gw := range gateways {
		if err := waitSession(gw, hdr); err != nil {
			return nil, err
		}
	}
	return hdr, nil
}

// waitSession asks gw for the session until it answers 200, for at most 5s.
func waitSession(gw string, hdr http.Header) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodGet, gw+"/session", nil)
		if err != nil {
			return err
		}
		req.Header = hdr.Clone()
		resp, err := httpClient.Do(req)
		status := ""
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			status = resp.Status
		} else {
			status = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not know the session after 5s: %s", gw, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
