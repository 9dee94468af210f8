package endpoint

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestWriteSocketDeadline: a write that has to wait for a slow reader sets the write
// timeout and clears it once done, so a write long after still goes through; one to a
// peer that never reads fails after the timeout.
func TestWriteSocketDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	const timeout = 200 * time.Millisecond
	c := newConn(nc, connConfig{name: "test", logger: slog.New(slog.DiscardHandler), writeTimeout: timeout})
	defer c.close(nil)
	if c.raw == nil {
		t.Skip("no raw socket on this platform")
	}

	// More than the socket buffers hold: the write waits until the peer reads it all.
	big := make([]byte, 16<<20)
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(peer, make([]byte, len(big)))
		read <- err
	}()
	c.wmu.Lock()
	n, err := c.writeSocket(big)
	c.wmu.Unlock()
	if err != nil || n != len(big) {
		t.Fatalf("big write: %d of %d bytes, %v", n, len(big), err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}

	// Well past the deadline the big write had: a small write must not fail on it.
	time.Sleep(2 * timeout)
	c.wmu.Lock()
	n, err = c.writeSocket([]byte("after"))
	c.wmu.Unlock()
	if err != nil || n != 5 {
		t.Fatalf("write after the timeout passed: %d bytes, %v", n, err)
	}

	// A peer that reads nothing more: the write fails after the timeout.
	start := time.Now()
	c.wmu.Lock()
	_, err = c.writeSocket(big)
	c.wmu.Unlock()
	if err == nil {
		t.Fatal("a write to a peer that does not read succeeded")
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("the write failed after %v, before the timeout of %v: %v", d, timeout, err)
	}
}
