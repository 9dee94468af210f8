package tlsrecord

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/testpki"
)

// pair is a server's TLS connection accepted from a Listener and what the test does with it.
type server struct {
	t      *testing.T
	ln     *Listener
	config *tls.Config
	pki    *testpki.PKI
}

func newServer(t *testing.T, configure func(*tls.Config)) *server {
	pki := testpki.New(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	require.NoError(t, err)
	config := &tls.Config{Certificates: []tls.Certificate{cert}}
	if configure != nil {
		configure(config)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := NewListener(tcp, config)
	t.Cleanup(func() { ln.Close() })
	return &server{t: t, ln: ln, config: config, pki: pki}
}

func (s *server) clientConfig() *tls.Config {
	pem, err := os.ReadFile(s.pki.CACert)
	require.NoError(s.t, err)
	roots := x509.NewCertPool()
	require.True(s.t, roots.AppendCertsFromPEM(pem))
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}

// accept accepts a connection, reads the client's request (a line) through crypto/tls and
// answers it with "ok\n", as an HTTP server does before a WebSocket upgrade.
func (s *server) accept() *tls.Conn {
	c, err := s.ln.Accept()
	require.NoError(s.t, err)
	s.t.Cleanup(func() { c.Close() })
	tc := c.(*tls.Conn)
	require.NoError(s.t, tc.SetDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReaderSize(tc, 16).ReadString('\n')
	require.NoError(s.t, err)
	require.Equal(s.t, "request\n", line)
	_, err = tc.Write([]byte("ok\n"))
	require.NoError(s.t, err)
	return tc
}

// dial connects a client with config and sends "request\n" while the server accepts the
// connection (the handshake needs both), and returns both ends.
func (s *server) dial(config *tls.Config) (client, server *tls.Conn) {
	type dialed struct {
		c   *tls.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, err := tls.Dial("tcp", s.ln.Addr().String(), config)
		if err == nil {
			err = c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		if err == nil {
			_, err = c.Write([]byte("request\n"))
		}
		done <- dialed{c, err}
	}()
	server = s.accept()
	d := <-done
	require.NoError(s.t, d.err)
	s.t.Cleanup(func() { d.c.Close() })
	return d.c, server
}

// readData reads from raw and opens the records until n bytes of data came, or the
// stream ends (its error is returned with what came).
func readData(t *testing.T, st *Stream, raw net.Conn, n int) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 1500) // records cut by the reads
	for len(got) < n {
		k, err := raw.Read(buf)
		if err != nil {
			return got, err
		}
		data, err := st.Open(buf[:k])
		got = append(got, data...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// TestHandoffCarriesOnTheConnection hands a connection over after a request and its
// answer, and goes on with it against crypto/tls's client: data both ways, in small
// records and in large ones cut by the reads, a key update asked by the server and
// answered by the client, and close_notify each way. The second connection resumes
// the first's session (no certificate in its handshake).
func TestHandoffCarriesOnTheConnection(t *testing.T) {
	s := newServer(t, nil)
	cc := s.clientConfig()
	cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for round, resumed := range []bool{false, true} {
		client, tc := s.dial(cc)
		answer := make([]byte, 3)
		_, err := io.ReadFull(client, answer)
		require.NoError(t, err)
		require.Equal(t, resumed, client.ConnectionState().DidResume, "round %d", round)

		st, raw, err := Handoff(tc)
		require.NoError(t, err)
		_, err = tc.Write([]byte("x"))
		require.Error(t, err, "crypto/tls writes nothing once the connection is handed over")

		_, err = client.Write([]byte("ping"))
		require.NoError(t, err)
		got, err := readData(t, st, raw, 4)
		require.NoError(t, err)
		require.Equal(t, "ping", string(got))

		_, err = raw.Write(st.Seal(nil, []byte("pong")))
		require.NoError(t, err)
		pong := make([]byte, 4)
		_, err = io.ReadFull(client, pong)
		require.NoError(t, err)
		require.Equal(t, "pong", string(pong))

		// A key update the server asks the client to answer, then data both ways.
		st.ask = true
		_, err = raw.Write(st.Seal(nil, []byte("after the update")))
		require.NoError(t, err)
		after := make([]byte, len("after the update"))
		_, err = io.ReadFull(client, after)
		require.NoError(t, err)
		require.Equal(t, "after the update", string(after))
		_, err = client.Write([]byte("answered"))
		require.NoError(t, err)
		got, err = readData(t, st, raw, len("answered"))
		require.NoError(t, err)
		require.Equal(t, "answered", string(got))
		require.False(t, st.UpdateOwed(), "the client's update asked for none")

		// Large data, in full records cut by the reads.
		big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
		go client.Write(big)
		got, err = readData(t, st, raw, len(big))
		require.NoError(t, err)
		require.Equal(t, big, got)
		_, err = raw.Write(st.Seal(nil, big))
		require.NoError(t, err)
		back := make([]byte, len(big))
		_, err = io.ReadFull(client, back)
		require.NoError(t, err)
		require.Equal(t, big, back)

		// close_notify from the server, then from the client.
		b, sealed := st.SealCloseNotify(nil)
		require.True(t, sealed)
		_, again := st.SealCloseNotify(nil)
		require.False(t, again)
		_, err = raw.Write(b)
		require.NoError(t, err)
		_, err = client.Read(answer)
		require.ErrorIs(t, err, io.EOF)
		require.NoError(t, client.Close())
		_, err = readData(t, st, raw, 1)
		require.ErrorIs(t, err, io.EOF)
		raw.Close()
	}
}

// TestHandoffRefused: a TLS 1.2 connection is not handed over, and crypto/tls keeps it.
func TestHandoffRefused(t *testing.T) {
	s := newServer(t, nil)
	cc := s.clientConfig()
	cc.MaxVersion = tls.VersionTLS12
	client, tc := s.dial(cc)
	_, _, err := Handoff(tc)
	require.ErrorIs(t, err, ErrNotHandedOver)
	answer := make([]byte, 3)
	_, err = io.ReadFull(client, answer)
	require.NoError(t, err)
	_, err = tc.Write([]byte("still"))
	require.NoError(t, err)
	still := make([]byte, 5)
	_, err = io.ReadFull(client, still)
	require.NoError(t, err)
	require.Equal(t, "still", string(still))
}

// TestHandoffFindsDataHeld: data that came in the request's record, after the request,
// and that crypto/tls holds because its reader took no more than the request, is not
// lost in a hand-over: Handoff fails with ErrDataHeld. Without it the connection is
// handed over, though the server sent nothing under its traffic secret yet (no session
// ticket: this client keeps none).
func TestHandoffFindsDataHeld(t *testing.T) {
	for _, extra := range []string{"and a frame too early", ""} {
		s := newServer(t, nil)
		answered := make(chan string, 1)
		go func() {
			defer close(answered)
			c, err := tls.Dial("tcp", s.ln.Addr().String(), s.clientConfig())
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("a request of 24 bytes..\n" + extra))
			b, _ := io.ReadAll(c)
			answered <- string(b)
		}()
		c, err := s.ln.Accept()
		require.NoError(t, err)
		tc := c.(*tls.Conn)
		require.NoError(t, tc.SetDeadline(time.Now().Add(10*time.Second)))
		request := make([]byte, 24)
		_, err = io.ReadFull(tc, request)
		require.NoError(t, err)
		st, raw, err := Handoff(tc)
		if extra != "" {
			require.ErrorIs(t, err, ErrDataHeld)
			tc.Close()
			<-answered
			continue
		}
		require.NoError(t, err)
		b, _ := st.SealCloseNotify(st.Seal(nil, []byte("answer")))
		_, err = raw.Write(b)
		require.NoError(t, err)
		require.Equal(t, "answer", <-answered)
		raw.Close()
	}
}

// TestHugeRecordDuringTheHandshake: a record header announcing more than TLS allows costs
// no buffer of that size; crypto/tls ends the handshake.
func TestHugeRecordDuringTheHandshake(t *testing.T) {
	s := newServer(t, nil)
	raw, err := net.Dial("tcp", s.ln.Addr().String())
	require.NoError(t, err)
	defer raw.Close()
	_, err = raw.Write([]byte{typeHandshake, 3, 1, 0xff, 0xff})
	require.NoError(t, err)
	c, err := s.ln.Accept()
	require.NoError(t, err)
	defer c.Close()
	tc := c.(*tls.Conn)
	require.NoError(t, tc.SetDeadline(time.Now().Add(10*time.Second)))
	require.Error(t, tc.Handshake())
	in := &tc.NetConn().(*Conn).in
	require.Nil(t, in.body)
	require.ErrorContains(t, in.broken, "longer than TLS allows")
}

// TestBadRecordsEndTheStream: a record altered on the way, or of a type that has no place
// after the handshake, ends what the peer sends with ErrRecord.
func TestBadRecordsEndTheStream(t *testing.T) {
	for _, c := range []struct {
		name   string
		record func(client *Stream) []byte
	}{
		{"altered", func(c *Stream) []byte { b := c.Seal(nil, []byte("data")); b[len(b)-1] ^= 1; return b }},
		{"plaintext handshake", func(*Stream) []byte { return []byte{typeHandshake, 3, 3, 0, 4, 1, 0, 0, 0} }},
		{"too long", func(*Stream) []byte { return []byte{typeApplicationData, 3, 3, 0xff, 0xff} }},
		{"another handshake message", func(c *Stream) []byte { return c.out.seal(nil, typeHandshake, []byte{4, 0, 0, 0}) }},
		{"a fatal alert", func(c *Stream) []byte { return c.out.seal(nil, typeAlert, []byte{2, 40}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, server := streamPair(t)
			got, err := server.Open(append(client.Seal(nil, []byte("before")), c.record(client)...))
			require.Equal(t, "before", string(got))
			require.ErrorIs(t, err, ErrRecord)
			_, err = server.Open(client.Seal(nil, []byte("after")))
			require.ErrorIs(t, err, ErrRecord, "nothing is taken after a bad record")
		})
	}
}

// streamPair returns two Streams, each the other's peer, under fresh secrets.
func streamPair(t *testing.T) (client, server *Stream) {
	s := suiteByID(tls.TLS_AES_128_GCM_SHA256)
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	dir := func(secret []byte) *direction {
		d, err := newDirection(s, secret)
		require.NoError(t, err)
		return d
	}
	return &Stream{in: dir(b), out: dir(a)}, &Stream{in: dir(a), out: dir(b)}
}

// TestHandoffWithEachSuite hands over connections from OpenSSL's client under each TLS 1.3
// cipher suite (crypto/tls's client offers AES-128-GCM first wherever the processor has
// AES instructions, so it cannot choose the other two).
func TestHandoffWithEachSuite(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (.ci/run installs it)")
	}
	s := newServer(t, nil)
	for _, name := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(openssl, "s_client", "-connect", s.ln.Addr().String(), "-tls1_3",
				"-ciphersuites", name, "-CAfile", s.pki.CACert, "-quiet", "-no_ign_eof")
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			_, err = stdin.Write([]byte("request\n"))
			require.NoError(t, err)
			tc := s.accept()
			require.Equal(t, name, tls.CipherSuiteName(tc.ConnectionState().CipherSuite))
			out := bufio.NewReader(stdout)
			line, err := out.ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "ok\n", line)

			st, raw, err := Handoff(tc)
			require.NoError(t, err)
			defer raw.Close()
			_, err = stdin.Write([]byte("from openssl\n"))
			require.NoError(t, err)
			got, err := readData(t, st, raw, len("from openssl\n"))
			require.NoError(t, err)
			require.Equal(t, "from openssl\n", string(got))
			_, err = raw.Write(st.Seal(nil, []byte("from the loop\n")))
			require.NoError(t, err)
			line, err = out.ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "from the loop\n", line)
			// openssl ends at the end of its input, with close_notify.
			require.NoError(t, stdin.Close())
			_, err = readData(t, st, raw, 1)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after openssl's input ended: %v, want io.EOF (close_notify)", err)
			}
		})
	}
}
