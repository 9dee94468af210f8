// Package tlsconfig builds the *tls.Config values of relay.ClientConfig.TLS and
// relay.ServerOptions.TLS from the tls block of global-sessions' config files (server_key,
// server_cert, client_cert, client_key, ca_file), with mutual TLS and errors that name the
// field and the file. On a serving side client_cert is the CA that client certificates
// must chain to; on a connecting side it is the process's own certificate, with its key in
// client_key. It is not a general TLS toolkit: it reads PEM files and nothing else.
package tlsconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sentinel errors returned by Server and Client, wrapped with the JSON field and the path.
// Test for them with errors.Is. A file that cannot be read wraps the error from os.ReadFile,
// so errors.Is(err, fs.ErrNotExist) reports a missing file.
var (
	// ErrFieldRequired means a field that the requested side needs is empty, or one of a
	// certificate/key pair is set without the other. The message names the missing field.
	ErrFieldRequired = errors.New("required field not set")
	// ErrNoCertificate means a certificate file holds no PEM "CERTIFICATE" block.
	ErrNoCertificate = errors.New("no PEM certificate found")
	// ErrInvalidCertificate means a PEM "CERTIFICATE" block does not parse as an X.509 certificate.
	ErrInvalidCertificate = errors.New("invalid certificate")
	// ErrNoPrivateKey means a key file holds no PEM private key block.
	ErrNoPrivateKey = errors.New("no PEM private key found")
	// ErrInvalidPrivateKey means a PEM private key block does not parse as a supported key.
	ErrInvalidPrivateKey = errors.New("invalid private key")
	// ErrKeyMismatch means a private key does not belong to the certificate it is paired with.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrNoServerName means Client was called with an empty server name although the host name is checked.
	ErrNoServerName = errors.New("empty server name")
)

// Config is the JSON tls block of a config file. The zero value configures no TLS.
// Paths are used as given, relative to the working directory; see Resolve.
type Config struct {
	// ServerKey is the PEM file with the server's private key.
	ServerKey string `json:"server_key,omitempty"`
	// ServerCert is the PEM file with the server's certificate chain, leaf first. A client
	// without CAFile trusts the certificates in it as roots.
	ServerCert string `json:"server_cert,omitempty"`
	// ClientCert is, on a server, the PEM certificate (or CA bundle) that client certificates
	// must chain to; setting it makes the server require and verify a client certificate.
	// On a client it is the client's own certificate chain, with its key in ClientKey.
	ClientCert string `json:"client_cert,omitempty"`
	// ClientKey is the PEM file with the client's private key, used with ClientCert on a client.
	ClientKey string `json:"client_key,omitempty"`
	// CAFile is a PEM bundle of CA certificates that a client verifies the server's chain
	// against; a server with ClientCert set also accepts client certificates chaining to them.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipHostnameCheck makes a client verify the server's chain but not its host
	// name. It is meant only for test set-ups.
	InsecureSkipHostnameCheck bool `json:"insecure_skip_hostname_check,omitempty"`
}

// Enabled reports whether the block configures TLS at all, that is whether any field is set.
func (c *Config) Enabled() bool {
	return c.ServerKey != "" || c.ServerCert != "" || c.ClientCert != "" || c.ClientKey != "" ||
		c.CAFile != "" || c.InsecureSkipHostnameCheck
}

// Resolve returns a copy of c with every relative path joined to dir, normally the
// directory of the config file the block was read from. Empty and absolute paths are kept.
func (c Config) Resolve(dir string) Config {
	for _, p := range []*string{&c.ServerKey, &c.ServerCert, &c.ClientCert, &c.ClientKey, &c.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return c
}

// Server returns the server side config. It loads the certificate chain from ServerCert and
// its key from ServerKey; both are required. When ClientCert is set, the server requires a
// client certificate and verifies it against the certificates in ClientCert plus CAFile.
// The minimum protocol version is TLS 1.2. Errors name the JSON field and the path.
func (c *Config) Server() (*tls.Config, error) {
	cert, err := loadKeyPair("server_cert", c.ServerCert, "server_key", c.ServerKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if c.ClientCert != "" {
		pool := x509.NewCertPool()
		if err := addCerts(pool, "client_cert", c.ClientCert); err != nil {
			return nil, err
		}
		if c.CAFile != "" {
			if err := addCerts(pool, "ca_file", c.CAFile); err != nil {
				return nil, err
			}
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client returns the client side config for dialing serverName, a host name or an IP
// address as text. The server's chain is verified against the certificates in CAFile, else
// against those in ServerCert, else against the system pool. When ClientCert and ClientKey
// are both set, the client presents that certificate for mutual TLS; one without the other
// is an error. With InsecureSkipHostnameCheck the chain is still verified against the same
// roots but the host name is not. The minimum protocol version is TLS 1.2.
// Errors name the JSON field and the path.
func (c *Config) Client(serverName string) (*tls.Config, error) {
	if serverName == "" && !c.InsecureSkipHostnameCheck {
		return nil, fmt.Errorf("tls: client: %w", ErrNoServerName)
	}
	if c.ClientCert != "" && c.ClientKey == "" {
		return nil, fmt.Errorf("tls: client_key: %w: on the side that connects, client_cert (%q) is this process's own "+
			"certificate, presented to the server, and needs its private key: add \"client_key\" with the PEM file of "+
			"that key, or remove client_cert to present none (a server's block, which the original examples copy to the "+
			"connecting side, uses client_cert for the CA that client certificates must chain to)", ErrFieldRequired, c.ClientCert)
	}
	var roots *x509.CertPool
	switch {
	case c.CAFile != "":
		roots = x509.NewCertPool()
		if err := addCerts(roots, "ca_file", c.CAFile); err != nil {
			return nil, err
		}
	case c.ServerCert != "":
		roots = x509.NewCertPool()
		if err := addCerts(roots, "server_cert", c.ServerCert); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
	if c.ClientCert != "" || c.ClientKey != "" {
		cert, err := loadKeyPair("client_cert", c.ClientCert, "client_key", c.ClientKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.InsecureSkipHostnameCheck {
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, roots)
		}
	}
	return cfg, nil
}

// verifyChain verifies the server's chain against roots (nil: the system pool) for server
// authentication, without checking the host name.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("tls: server presented no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: verify server certificate chain: %w", err)
	}
	return nil
}

// loadKeyPair loads the certificate chain in certPath and the private key in keyPath and
// checks that they belong together. The field names are used in errors.
func loadKeyPair(certField, certPath, keyField, keyPath string) (tls.Certificate, error) {
	if certPath == "" {
		return tls.Certificate{}, missing(certField, keyField, keyPath)
	}
	if keyPath == "" {
		return tls.Certificate{}, missing(keyField, certField, certPath)
	}
	certs, err := readCerts(certField, certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readKey(keyField, keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("tls: %s %q and %s %q: %w", keyField, keyPath, certField, certPath, ErrKeyMismatch)
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// missing returns the ErrFieldRequired error for the empty field, naming its partner
// field when that one is set.
func missing(field, otherField, otherPath string) error {
	if otherPath != "" {
		return fmt.Errorf("tls: %s: %w (needed with %s %q)", field, ErrFieldRequired, otherField, otherPath)
	}
	return fmt.Errorf("tls: %s: %w", field, ErrFieldRequired)
}

// addCerts adds every certificate in the PEM file at path to pool.
func addCerts(pool *x509.CertPool, field, path string) error {
	certs, err := readCerts(field, path)
	if err != nil {
		return err
	}
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return nil
}

// readCerts parses the PEM "CERTIFICATE" blocks in the file at path, skipping other blocks.
// It fails if there is none or one does not parse.
func readCerts(field, path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: %s %q: %w", field, path, err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: %s %q: certificate %d: %w: %w", field, path, len(certs)+1, ErrInvalidCertificate, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("tls: %s %q: %w", field, path, ErrNoCertificate)
	}
	return certs, nil
}

// readKey parses the first PEM private key block in the file at path. It accepts PKCS #8
// ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY") encodings.
func readKey(field, path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: %s %q: %w", field, path, err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("tls: %s %q: %w", field, path, ErrNoPrivateKey)
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		key, err := parseKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls: %s %q: %w: %w", field, path, ErrInvalidPrivateKey, err)
		}
		return key, nil
	}
}

// parseKey parses a DER private key in PKCS #8, PKCS #1 or SEC 1 form, like crypto/tls does.
func parseKey(der []byte) (crypto.Signer, error) {
	if key, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch key := key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return key.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
	}
	if key, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return key, nil
	}
	if key, err := x509.ParseECPrivateKey(der); err == nil {
		return key, nil
	}
	return nil, errors.New("not a PKCS #8, PKCS #1 or SEC 1 key")
}
