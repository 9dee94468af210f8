// Package benchpki makes the throwaway certificates of the comparison programs' TLS
// servers: a CA and a server certificate for 127.0.0.1, written as PEM files (by the main
// module's internal/testpki).
package benchpki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/globalsession/globalsession/internal/testpki"
)

// PKI is a throwaway CA and a server certificate for 127.0.0.1, written as PEM files into a
// directory the caller removes. A server child process loads the server pair from the
// files (ServerTLS); the client trusts the CA through Roots.
type PKI struct {
	CertFile, KeyFile string
	Roots             *x509.CertPool
}

// New generates an ECDSA P-256 CA and a server certificate signed by it for 127.0.0.1,
// and writes them into dir.
func New(dir string) (*PKI, error) {
	p, err := testpki.Write(dir, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(p.CACert)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("benchpki: no certificate in %s", p.CACert)
	}
	return &PKI{CertFile: p.ServerCert, KeyFile: p.ServerKey, Roots: roots}, nil
}

// ClientTLS is the client side: it verifies the server's certificate against the CA.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// ServerTLS loads the server pair written by New (in a server child process).
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
