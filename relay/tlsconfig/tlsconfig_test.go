package tlsconfig_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/globalsession/globalsession/internal/testpki"
	"github.com/globalsession/globalsession/relay/tlsconfig"
)

// ioTimeout bounds every network operation so a broken case fails instead of hanging.
const ioTimeout = 10 * time.Second

// exchange runs one TLS server connection on 127.0.0.1:0 that echoes one byte, dials it with
// clientCfg, sends a byte and reads it back. It returns the first error on each side.
func exchange(t *testing.T, serverCfg, clientCfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverDone := make(chan error, 1)
	go func() { serverDone <- serveOne(ln, serverCfg) }()
	clientErr = dialOne(ln.Addr().String(), clientCfg)
	if err := ln.Close(); err != nil {
		t.Errorf("close listener: %v", err)
	}
	return clientErr, <-serverDone
}

// serveOne accepts one connection, completes the handshake and echoes one byte.
func serveOne(ln net.Listener, cfg *tls.Config) error {
	raw, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	conn := tls.Server(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("server handshake: %w", err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("server read: %w", err)
	}
	if _, err := conn.Write(buf); err != nil {
		return fmt.Errorf("server write: %w", err)
	}
	return nil
}

// dialOne connects to addr, completes the handshake, sends one byte and reads the echo.
func dialOne(addr string, cfg *tls.Config) error {
	raw, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("client handshake: %w", err)
	}
	if _, err := conn.Write([]byte{'x'}); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("client read: %w", err)
	}
	if buf[0] != 'x' {
		return fmt.Errorf("client read %q, want %q", buf, "x")
	}
	return nil
}

func isUnknownAuthority(err error) bool {
	var target x509.UnknownAuthorityError
	return errors.As(err, &target)
}

func isUnknownOrNoSystemRoots(err error) bool {
	var target x509.SystemRootsError
	return isUnknownAuthority(err) || errors.As(err, &target)
}

func isHostnameError(err error) bool {
	var target x509.HostnameError
	return errors.As(err, &target)
}

// presentAnyway makes the client send its certificate even when it does not chain to a CA
// the server asked for, so that the server's own verification is exercised.
func presentAnyway(cfg *tls.Config) {
	cert := cfg.Certificates[0]
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
}

func TestHandshake(t *testing.T) {
	pki := testpki.New(t)
	other := testpki.New(t)
	elsewhere := testpki.NewWithHosts(t, "db.example.com")

	plain := tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey}
	mutual := tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: pki.CACert}
	wrongHost := tlsconfig.Config{ServerCert: elsewhere.ServerCert, ServerKey: elsewhere.ServerKey}

	tests := []struct {
		name       string
		server     tlsconfig.Config
		client     tlsconfig.Config
		serverName string
		tweak      func(*tls.Config) // adjusts the client config, if set

		// clientRefuses, if set, says the client must refuse the server with an error it accepts.
		clientRefuses func(error) bool
		// serverRefuses says the server must refuse the client.
		serverRefuses bool
	}{
		{
			name:       "ca_file",
			server:     plain,
			client:     tlsconfig.Config{CAFile: pki.CACert},
			serverName: "127.0.0.1",
		},
		{
			name:       "ca_file with host name",
			server:     plain,
			client:     tlsconfig.Config{CAFile: pki.CACert},
			serverName: "localhost",
		},
		{
			name:       "server_cert as root",
			server:     plain,
			client:     tlsconfig.Config{ServerCert: pki.ServerCert},
			serverName: "127.0.0.1",
		},
		{
			name:       "ca_file preferred over server_cert",
			server:     plain,
			client:     tlsconfig.Config{CAFile: other.CACert, ServerCert: pki.ServerCert},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownAuthority,
		},
		{
			name:       "client trusts another CA",
			server:     plain,
			client:     tlsconfig.Config{CAFile: other.CACert},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownAuthority,
		},
		{
			name:       "client trusts another server_cert",
			server:     plain,
			client:     tlsconfig.Config{ServerCert: other.ServerCert},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownAuthority,
		},
		{
			name:       "system pool does not trust test CA",
			server:     plain,
			client:     tlsconfig.Config{},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownOrNoSystemRoots,
		},
		{
			name:       "client below TLS 1.2",
			server:     plain,
			client:     tlsconfig.Config{CAFile: pki.CACert},
			serverName: "127.0.0.1",
			tweak: func(cfg *tls.Config) {
				cfg.MinVersion = tls.VersionTLS10
				cfg.MaxVersion = tls.VersionTLS11
			},

			clientRefuses: func(err error) bool { return err != nil },
			serverRefuses: true,
		},
		{
			name:       "mutual TLS with client cert",
			server:     mutual,
			client:     tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey},
			serverName: "127.0.0.1",
		},
		{
			name: "mutual TLS with client cert from ca_file",
			server: tlsconfig.Config{
				ServerCert: pki.ServerCert, ServerKey: pki.ServerKey,
				ClientCert: other.CACert, CAFile: pki.CACert,
			},
			client:     tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey},
			serverName: "127.0.0.1",
		},
		{
			name:       "mutual TLS without client cert",
			server:     mutual,
			client:     tlsconfig.Config{CAFile: pki.CACert},
			serverName: "127.0.0.1",

			serverRefuses: true,
		},
		{
			name:       "mutual TLS with client cert from another CA",
			server:     mutual,
			client:     tlsconfig.Config{CAFile: pki.CACert, ClientCert: other.ClientCert, ClientKey: other.ClientKey},
			serverName: "127.0.0.1",
			tweak:      presentAnyway,

			serverRefuses: true,
		},
		{
			name:       "mutual TLS with server cert as client cert",
			server:     mutual,
			client:     tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ServerCert, ClientKey: pki.ServerKey},
			serverName: "127.0.0.1",
			tweak:      presentAnyway,

			serverRefuses: true, // the server certificate lacks ExtKeyUsageClientAuth
		},
		{
			name:       "server cert for another host",
			server:     wrongHost,
			client:     tlsconfig.Config{CAFile: elsewhere.CACert},
			serverName: "127.0.0.1",

			clientRefuses: isHostnameError,
		},
		{
			name:       "server cert for another host with hostname check skipped",
			server:     wrongHost,
			client:     tlsconfig.Config{CAFile: elsewhere.CACert, InsecureSkipHostnameCheck: true},
			serverName: "127.0.0.1",
		},
		{
			name:       "hostname check skipped with server_cert as root",
			server:     wrongHost,
			client:     tlsconfig.Config{ServerCert: elsewhere.ServerCert, InsecureSkipHostnameCheck: true},
			serverName: "127.0.0.1",
		},
		{
			name:       "hostname check skipped still refuses untrusted chain",
			server:     wrongHost,
			client:     tlsconfig.Config{CAFile: pki.CACert, InsecureSkipHostnameCheck: true},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownAuthority,
		},
		{
			name:       "hostname check skipped still refuses system pool",
			server:     plain,
			client:     tlsconfig.Config{InsecureSkipHostnameCheck: true},
			serverName: "127.0.0.1",

			clientRefuses: isUnknownOrNoSystemRoots,
		},
		{
			name:       "hostname check skipped with mutual TLS",
			server:     tlsconfig.Config{ServerCert: elsewhere.ServerCert, ServerKey: elsewhere.ServerKey, ClientCert: pki.CACert},
			client:     tlsconfig.Config{CAFile: elsewhere.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey, InsecureSkipHostnameCheck: true},
			serverName: "127.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverCfg, err := tt.server.Server()
			if err != nil {
				t.Fatalf("Server: %v", err)
			}
			clientCfg, err := tt.client.Client(tt.serverName)
			if err != nil {
				t.Fatalf("Client: %v", err)
			}
			if tt.tweak != nil {
				tt.tweak(clientCfg)
			}
			clientErr, serverErr := exchange(t, serverCfg, clientCfg)
			t.Logf("client: %v; server: %v", clientErr, serverErr)
			switch {
			case tt.clientRefuses != nil:
				if clientErr == nil {
					t.Fatal("client accepted the server")
				}
				if !tt.clientRefuses(clientErr) {
					t.Errorf("client error of the wrong kind: %v", clientErr)
				}
			case tt.serverRefuses:
				if clientErr == nil {
					t.Error("client completed the exchange")
				}
			default:
				if clientErr != nil {
					t.Errorf("client: %v", clientErr)
				}
			}
			if tt.serverRefuses {
				if serverErr == nil {
					t.Error("server accepted the client")
				}
			} else if tt.clientRefuses == nil && serverErr != nil {
				t.Errorf("server: %v", serverErr)
			}
		})
	}
}

func TestServerConfig(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name     string
		cfg      tlsconfig.Config
		wantAuth tls.ClientAuthType
		wantCAs  bool
	}{
		{
			name:     "plain",
			cfg:      tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey},
			wantAuth: tls.NoClientCert,
		},
		{
			name:     "ca_file alone does not require client certs",
			cfg:      tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, CAFile: pki.CACert},
			wantAuth: tls.NoClientCert,
		},
		{
			name:     "client_cert requires client certs",
			cfg:      tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: pki.CACert},
			wantAuth: tls.RequireAndVerifyClientCert,
			wantCAs:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Server()
			if err != nil {
				t.Fatal(err)
			}
			if got.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", got.MinVersion)
			}
			if got.ClientAuth != tt.wantAuth {
				t.Errorf("ClientAuth = %v, want %v", got.ClientAuth, tt.wantAuth)
			}
			if (got.ClientCAs != nil) != tt.wantCAs {
				t.Errorf("ClientCAs set = %v, want %v", got.ClientCAs != nil, tt.wantCAs)
			}
			if len(got.Certificates) != 1 || got.Certificates[0].Leaf == nil {
				t.Errorf("Certificates = %d, want 1 with Leaf", len(got.Certificates))
			}
		})
	}
}

func TestClientConfig(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name       string
		cfg        tlsconfig.Config
		wantRoots  bool
		wantCerts  int
		wantSkip   bool
		serverName string
	}{
		{name: "system pool", cfg: tlsconfig.Config{}, serverName: "db.example.com"},
		{name: "ca_file", cfg: tlsconfig.Config{CAFile: pki.CACert}, wantRoots: true, serverName: "127.0.0.1"},
		{name: "server_cert", cfg: tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey}, wantRoots: true, serverName: "localhost"},
		{
			name:       "client cert",
			cfg:        tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey},
			wantRoots:  true,
			wantCerts:  1,
			serverName: "localhost",
		},
		{
			name:       "hostname check skipped",
			cfg:        tlsconfig.Config{CAFile: pki.CACert, InsecureSkipHostnameCheck: true},
			wantRoots:  true,
			wantSkip:   true,
			serverName: "127.0.0.1",
		},
		{
			name:      "hostname check skipped without server name",
			cfg:       tlsconfig.Config{CAFile: pki.CACert, InsecureSkipHostnameCheck: true},
			wantRoots: true,
			wantSkip:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Client(tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			if got.ServerName != tt.serverName {
				t.Errorf("ServerName = %q, want %q", got.ServerName, tt.serverName)
			}
			if got.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", got.MinVersion)
			}
			if (got.RootCAs != nil) != tt.wantRoots {
				t.Errorf("RootCAs set = %v, want %v", got.RootCAs != nil, tt.wantRoots)
			}
			if len(got.Certificates) != tt.wantCerts {
				t.Errorf("Certificates = %d, want %d", len(got.Certificates), tt.wantCerts)
			}
			if got.InsecureSkipVerify != tt.wantSkip || (got.VerifyConnection != nil) != tt.wantSkip {
				t.Errorf("InsecureSkipVerify = %v, VerifyConnection set = %v, want both %v",
					got.InsecureSkipVerify, got.VerifyConnection != nil, tt.wantSkip)
			}
		})
	}
}

func TestVerifyConnectionWithoutCertificate(t *testing.T) {
	pki := testpki.New(t)
	c := tlsconfig.Config{CAFile: pki.CACert, InsecureSkipHostnameCheck: true}
	cfg, err := c.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{}); err == nil {
		t.Error("VerifyConnection accepted a connection without a server certificate")
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadFiles(t *testing.T) {
	pki := testpki.New(t)
	other := testpki.New(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := writeFile(t, dir, "garbage.pem", []byte("not a PEM file\n"))
	badCert := writeFile(t, dir, "bad-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
	badKey := writeFile(t, dir, "bad-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}))

	server := func(c tlsconfig.Config) func() error {
		return func() error { _, err := c.Server(); return err }
	}
	client := func(c tlsconfig.Config) func() error {
		return func() error { _, err := c.Client("127.0.0.1"); return err }
	}
	tests := []struct {
		name      string
		build     func() error
		wantErr   error
		wantField string
		wantPath  string // the path the message must name, if any
	}{
		// Server side.
		{"server: empty block", server(tlsconfig.Config{}), tlsconfig.ErrFieldRequired, "server_cert", ""},
		{"server: no server_cert", server(tlsconfig.Config{ServerKey: pki.ServerKey}), tlsconfig.ErrFieldRequired, "server_cert", pki.ServerKey},
		{"server: no server_key", server(tlsconfig.Config{ServerCert: pki.ServerCert}), tlsconfig.ErrFieldRequired, "server_key", pki.ServerCert},
		{"server: server_cert missing", server(tlsconfig.Config{ServerCert: missing, ServerKey: pki.ServerKey}), fs.ErrNotExist, "server_cert", missing},
		{"server: server_cert not PEM", server(tlsconfig.Config{ServerCert: garbage, ServerKey: pki.ServerKey}), tlsconfig.ErrNoCertificate, "server_cert", garbage},
		{"server: server_cert is a key", server(tlsconfig.Config{ServerCert: pki.ServerKey, ServerKey: pki.ServerKey}), tlsconfig.ErrNoCertificate, "server_cert", pki.ServerKey},
		{"server: server_cert corrupt", server(tlsconfig.Config{ServerCert: badCert, ServerKey: pki.ServerKey}), tlsconfig.ErrInvalidCertificate, "server_cert", badCert},
		{"server: server_key missing", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: missing}), fs.ErrNotExist, "server_key", missing},
		{"server: server_key is a certificate", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerCert}), tlsconfig.ErrNoPrivateKey, "server_key", pki.ServerCert},
		{"server: server_key corrupt", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: badKey}), tlsconfig.ErrInvalidPrivateKey, "server_key", badKey},
		{"server: server_key of another cert", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ClientKey}), tlsconfig.ErrKeyMismatch, "server_key", pki.ClientKey},
		{"server: client_cert missing", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: missing}), fs.ErrNotExist, "client_cert", missing},
		{"server: client_cert not PEM", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: garbage}), tlsconfig.ErrNoCertificate, "client_cert", garbage},
		{"server: ca_file not PEM", server(tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ServerKey, ClientCert: pki.CACert, CAFile: garbage}), tlsconfig.ErrNoCertificate, "ca_file", garbage},

		// Client side.
		{"client: empty server name", func() error { _, err := (&tlsconfig.Config{CAFile: pki.CACert}).Client(""); return err }, tlsconfig.ErrNoServerName, "", ""},
		{"client: ca_file missing", client(tlsconfig.Config{CAFile: missing}), fs.ErrNotExist, "ca_file", missing},
		{"client: ca_file not PEM", client(tlsconfig.Config{CAFile: garbage}), tlsconfig.ErrNoCertificate, "ca_file", garbage},
		{"client: ca_file corrupt", client(tlsconfig.Config{CAFile: badCert}), tlsconfig.ErrInvalidCertificate, "ca_file", badCert},
		{"client: server_cert not PEM", client(tlsconfig.Config{ServerCert: garbage}), tlsconfig.ErrNoCertificate, "server_cert", garbage},
		{"client: server_cert missing", client(tlsconfig.Config{ServerCert: missing}), fs.ErrNotExist, "server_cert", missing},
		{"client: client_cert without client_key", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert}), tlsconfig.ErrFieldRequired, "client_key", pki.ClientCert},
		{"client: client_key without client_cert", client(tlsconfig.Config{CAFile: pki.CACert, ClientKey: pki.ClientKey}), tlsconfig.ErrFieldRequired, "client_cert", pki.ClientKey},
		{"client: client_cert missing", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: missing, ClientKey: pki.ClientKey}), fs.ErrNotExist, "client_cert", missing},
		{"client: client_cert not PEM", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: garbage, ClientKey: pki.ClientKey}), tlsconfig.ErrNoCertificate, "client_cert", garbage},
		{"client: client_key missing", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: missing}), fs.ErrNotExist, "client_key", missing},
		{"client: client_key not PEM", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: garbage}), tlsconfig.ErrNoPrivateKey, "client_key", garbage},
		{"client: client_key of another cert", client(tlsconfig.Config{CAFile: pki.CACert, ClientCert: pki.ClientCert, ClientKey: other.ClientKey}), tlsconfig.ErrKeyMismatch, "client_key", other.ClientKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("error %q does not name field %s", err, tt.wantField)
			}
			if tt.wantPath != "" && !strings.Contains(err.Error(), tt.wantPath) {
				t.Errorf("error %q does not name path %s", err, tt.wantPath)
			}
		})
	}
}

func TestKeyMismatchNamesBothFiles(t *testing.T) {
	pki := testpki.New(t)
	c := tlsconfig.Config{ServerCert: pki.ServerCert, ServerKey: pki.ClientKey}
	_, err := c.Server()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"server_key", pki.ClientKey, "server_cert", pki.ServerCert} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestEnabled(t *testing.T) {
	tests := []struct {
		name string
		cfg  tlsconfig.Config
		want bool
	}{
		{"zero", tlsconfig.Config{}, false},
		{"server_key", tlsconfig.Config{ServerKey: "k"}, true},
		{"server_cert", tlsconfig.Config{ServerCert: "c"}, true},
		{"client_cert", tlsconfig.Config{ClientCert: "c"}, true},
		{"client_key", tlsconfig.Config{ClientKey: "k"}, true},
		{"ca_file", tlsconfig.Config{CAFile: "ca"}, true},
		{"insecure_skip_hostname_check", tlsconfig.Config{InsecureSkipHostnameCheck: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Enabled(); got != tt.want {
				t.Errorf("Enabled() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "ca.pem")
	in := tlsconfig.Config{
		ServerKey:                 "server-key.pem",
		ServerCert:                "certs/server.pem",
		ClientCert:                "../client.pem",
		CAFile:                    abs,
		InsecureSkipHostnameCheck: true,
	}
	orig := in
	got := in.Resolve(filepath.Join("etc", "app"))
	want := tlsconfig.Config{
		ServerKey:                 filepath.Join("etc", "app", "server-key.pem"),
		ServerCert:                filepath.Join("etc", "app", "certs", "server.pem"),
		ClientCert:                filepath.Join("etc", "client.pem"),
		CAFile:                    abs,
		InsecureSkipHostnameCheck: true,
	}
	if got != want {
		t.Errorf("Resolve = %+v, want %+v", got, want)
	}
	if in != orig {
		t.Errorf("Resolve modified its receiver: %+v", in)
	}
}

func TestResolvedPathsLoad(t *testing.T) {
	pki := testpki.New(t)
	rel := func(p string) string { return filepath.Base(p) }
	c := tlsconfig.Config{ServerCert: rel(pki.ServerCert), ServerKey: rel(pki.ServerKey)}.Resolve(pki.Dir)
	if _, err := c.Server(); err != nil {
		t.Fatal(err)
	}
}

func TestJSON(t *testing.T) {
	const block = `{
		"server_key": "sk.pem",
		"server_cert": "sc.pem",
		"client_cert": "cc.pem",
		"client_key": "ck.pem",
		"ca_file": "ca.pem",
		"insecure_skip_hostname_check": true
	}`
	var got tlsconfig.Config
	dec := json.NewDecoder(strings.NewReader(block))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := tlsconfig.Config{
		ServerKey: "sk.pem", ServerCert: "sc.pem", ClientCert: "cc.pem", ClientKey: "ck.pem",
		CAFile: "ca.pem", InsecureSkipHostnameCheck: true,
	}
	if got != want {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
	out, err := json.Marshal(tlsconfig.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, []byte("{}")) {
		t.Errorf("zero Config marshals to %s, want {}", out)
	}
}

// TestTheOriginalClientBlockSaysWhatToAdd: the original examples give the connecting side
// the server's block (server_key, server_cert, client_cert, no client_key); the error says
// which field to add and why.
func TestTheOriginalClientBlockSaysWhatToAdd(t *testing.T) {
	c := tlsconfig.Config{ServerKey: "keys/ec_key.pem", ServerCert: "keys/ec_crt.crt", ClientCert: "keys/cl_ec_crt.crt"}
	_, err := c.Client("localhost")
	if !errors.Is(err, tlsconfig.ErrFieldRequired) {
		t.Fatalf("err = %v, want ErrFieldRequired", err)
	}
	for _, want := range []string{`add "client_key"`, "keys/cl_ec_crt.crt", "remove client_cert"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
