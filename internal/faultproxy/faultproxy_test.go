package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	_, err := io.ReadFull(c, b)
	return err
}

// connected starts a proxy to an echo server and a connection through it that works.
func connected(t *testing.T) (*Proxy, net.Conn) {
	t.Helper()
	p, err := Start(echoServer(t))
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, roundTrip(c, 5*time.Second))
	return p, c
}

func TestCut(t *testing.T) {
	p, c := connected(t)

	p.Cut()
	assert.Error(t, roundTrip(c, 5*time.Second), "a carried connection is closed by the cut")
	c2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err, "the listener still accepts")
	defer c2.Close()
	assert.Error(t, roundTrip(c2, 5*time.Second), "and closes new connections while cut")

	p.Heal()
	c3, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c3.Close()
	assert.NoError(t, roundTrip(c3, 5*time.Second), "healed")
}

func TestSilence(t *testing.T) {
	p, c := connected(t)

	p.Silence()
	err := roundTrip(c, 100*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "nothing comes back while silent")
	assert.True(t, ne.Timeout(), "the connection is not closed: only the reader's deadline ends the wait")

	p.Heal()
	b := make([]byte, 4)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(c, b)
	require.NoError(t, err, "what was sent while silent arrives after the heal")
	assert.Equal(t, "ping", string(b))
	require.NoError(t, roundTrip(c, 5*time.Second))
}
