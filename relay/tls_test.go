package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/testpki"
	"github.com/globalsession/globalsession/relay/tlsconfig"
	"github.com/globalsession/globalsession/sessioncache"
)

// TestTLS runs a relay with mutual TLS: a client with a certificate of the right CA is
// served; a client without one, with one from another CA, or that does not trust the
// server's CA is refused; and a good client keeps being served throughout.
func TestTLS(t *testing.T) {
	pki := testpki.New(t)
	other := testpki.New(t)
	srv := tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: pki.CACert}
	stls, err := srv.Server()
	require.NoError(t, err)
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{TLS: stls}})
	addr := r.Addr().String()

	client := func(c tlsconfig.Config) ClientConfig {
		t.Helper()
		ctls, err := c.Client("127.0.0.1")
		require.NoError(t, err)
		return ClientConfig{Addr: addr, TLS: ctls, BackoffMin: 10 * time.Millisecond}
	}
	good := dial(t, client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}))
	ctx := ctxT(t)
	require.NoError(t, good.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}))

	refused := []struct {
		name string
		cfg  tlsconfig.Config
	}{
		{"no client certificate", tlsconfig.Config{CAFile: pki.CACert}},
		{"client certificate of another CA", tlsconfig.Config{CAFile: pki.CACert, ClientCert: other.ClientCert, ClientKey: other.ClientKey}},
		{"server not trusted", tlsconfig.Config{CAFile: other.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			c, err := Dial(short, client(tt.cfg))
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read, after
				// the handshake: the first request fails instead.
				_, err = c.Ping(short)
				c.Close()
			}
			require.ErrorIs(t, err, ErrUnavailable)
			v, _, err := entryParts(good.Get(ctx, "auths", []byte("k")))
			require.NoError(t, err)
			require.Equal(t, "v", string(v))
		})
	}
	t.Run("plain TCP to a TLS relay", func(t *testing.T) {
		short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := Dial(short, ClientConfig{Addr: addr, BackoffMin: 10 * time.Millisecond})
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), "if it speaks TLS, give this client a TLS configuration")
		assert.Equal(t, 1, strings.Count(err.Error(), "server unavailable"), "the error does not repeat itself: %v", err)
	})
}

// TestMessagesOfEverySize: messages from a few bytes to well past the large-frame size
// (which a connection's reader takes into a buffer of its own) reach a subscriber whole
// and in order, over plain TCP and over TLS, while other publishers' small messages go
// through the same connections.
func TestMessagesOfEverySize(t *testing.T) {
	pki := testpki.New(t)
	srv := tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: pki.CACert}
	stls, err := srv.Server()
	require.NoError(t, err)
	cli := tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}
	ctls, err := cli.Client("127.0.0.1")
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		serverTLS *tls.Config
		clientTLS *tls.Config
	}{{"plain", nil, nil}, {"TLS", stls, ctls}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{TLS: tc.serverTLS}})
			cfg := ClientConfig{Addr: r.Addr().String(), TLS: tc.clientTLS}
			sub, pub := dial(t, cfg), dial(t, cfg)
			ctx := ctxT(t)
			got := newChanges()
			require.NoError(t, sub.Subscribe(ctx, "news", got.add))
			sizes := []int{0, 10, 5000, 20 << 10, 70 << 10, 300 << 10, 100, 900 << 10}
			for i, n := range sizes {
				v := bytes.Repeat([]byte{byte('a' + i)}, n)
				require.NoError(t, pub.Publish(ctx, "news", fmt.Appendf(nil, "m%d", i), sessioncache.Entry{Value: v}))
			}
			all := got.wait(t, len(sizes))
			for i, n := range sizes {
				require.Equal(t, fmt.Sprintf("m%d", i), string(all[i].Key))
				require.Truef(t, bytes.Equal(bytes.Repeat([]byte{byte('a' + i)}, n), all[i].Value),
					"message %d of %d bytes arrived as %d other bytes", i, n, len(all[i].Value))
			}
		})
	}
}
