// Package testpki generates a throwaway certificate authority with server and client certificates for tests.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI holds the paths of the PEM files written by New or NewWithHosts.
// Certificate files hold one certificate; key files hold one PKCS #8 "PRIVATE KEY" block.
type PKI struct {
	Dir string // Dir is the directory the PEM files were written to.

	CACert, CAKey string // CACert and CAKey are the self-signed CA certificate and its key.

	// ServerCert and ServerKey are the server certificate (ExtKeyUsageServerAuth), signed by
	// the CA and issued for "localhost", 127.0.0.1 and ::1 (or the hosts given to NewWithHosts).
	ServerCert, ServerKey string

	// ClientCert and ClientKey are the client certificate (ExtKeyUsageClientAuth), signed by the CA.
	ClientCert, ClientKey string
}

// New writes a fresh CA, a server certificate for "localhost", 127.0.0.1 and ::1 and a client
// certificate into tb.TempDir() and returns their paths. It calls tb.Fatal on any error.
func New(tb testing.TB) *PKI {
	tb.Helper()
	return NewWithHosts(tb, "localhost", "127.0.0.1", "::1")
}

// NewWithHosts is New with the server certificate issued for the given hosts instead: each
// host that parses as an IP address becomes an IP SAN, any other a DNS SAN. Every call
// creates a new CA, so certificates from two calls do not chain to each other's CA.
func NewWithHosts(tb testing.TB, hosts ...string) *PKI {
	tb.Helper()
	p, err := generate(tb.TempDir(), time.Now(), hosts)
	if err != nil {
		tb.Fatalf("testpki: %v", err)
	}
	return p
}

// Write is NewWithHosts for programs outside tests (the comparison programs of bench): it
// writes into dir, which the caller removes, and returns errors.
func Write(dir string, hosts ...string) (*PKI, error) {
	return generate(dir, time.Now(), hosts)
}

// generate creates the CA, server and client certificates and writes them into dir.
func generate(dir string, now time.Time, hosts []string) (*PKI, error) {
	p := &PKI{
		Dir:        dir,
		CACert:     filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(24*time.Hour)

	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	caSerial, err := newSerial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: caSerial,
		// A unique name keeps CAs from different calls apart, also in a TLS CertificateRequest.
		Subject:               pkix.Name{CommonName: "testpki CA " + caSerial.Text(16)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	serverTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "testpki server"},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, h)
		}
	}
	clientTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "testpki client"},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}

	if err := writeCert(p.CACert, caDER); err != nil {
		return nil, err
	}
	if err := writeKey(p.CAKey, caKey); err != nil {
		return nil, err
	}
	if err := issue(ca, caKey, serverTmpl, p.ServerCert, p.ServerKey); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if err := issue(ca, caKey, clientTmpl, p.ClientCert, p.ClientKey); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return p, nil
}

// issue creates a key and a certificate from tmpl signed by ca, and writes both.
func issue(ca *x509.Certificate, caKey crypto.Signer, tmpl *x509.Certificate, certPath, keyPath string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := writeCert(certPath, der); err != nil {
		return err
	}
	return writeKey(keyPath, key)
}

// newKey generates an ECDSA P-256 key.
func newKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// writeCert writes der as a PEM "CERTIFICATE" block to path.
func writeCert(path string, der []byte) error {
	return writePEM(path, &pem.Block{Type: "CERTIFICATE", Bytes: der}, 0o644)
}

// writeKey writes key as a PEM PKCS #8 "PRIVATE KEY" block to path.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key for %q: %w", path, err)
	}
	return writePEM(path, &pem.Block{Type: "PRIVATE KEY", Bytes: der}, 0o600)
}

// writePEM writes one PEM block to path with the given permissions.
func writePEM(path string, b *pem.Block, perm os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(b), perm); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return nil
}
