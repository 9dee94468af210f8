package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	if len(rest) != 0 {
		t.Fatalf("%s: %d trailing bytes", path, len(rest))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func TestNew(t *testing.T) {
	p := New(t)
	ca := readCert(t, p.CACert)
	if !ca.IsCA {
		t.Error("CA certificate is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	now := time.Now()

	server := readCert(t, p.ServerCert)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		_, err := server.Verify(x509.VerifyOptions{
			DNSName:     host,
			Roots:       roots,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if err := server.VerifyHostname("example.com"); err == nil {
		t.Error("server certificate valid for example.com")
	}
	if !server.NotBefore.Before(now.Add(-50*time.Minute)) || !server.NotAfter.After(now.Add(23*time.Hour)) {
		t.Errorf("server certificate valid %v to %v", server.NotBefore, server.NotAfter)
	}

	client := readCert(t, p.ClientCert)
	if _, err := client.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if client.SerialNumber.Cmp(server.SerialNumber) == 0 {
		t.Error("client and server certificates share a serial number")
	}

	for _, pair := range [][2]string{{p.CACert, p.CAKey}, {p.ServerCert, p.ServerKey}, {p.ClientCert, p.ClientKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("key pair %s: %v", pair[0], err)
		}
	}
	info, err := os.Stat(p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("server key permissions %v", perm)
	}
}

func TestNewWithHosts(t *testing.T) {
	p := NewWithHosts(t, "db.internal", "10.1.2.3")
	server := readCert(t, p.ServerCert)
	if len(server.DNSNames) != 1 || server.DNSNames[0] != "db.internal" {
		t.Errorf("DNS names %q", server.DNSNames)
	}
	if len(server.IPAddresses) != 1 || !server.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) {
		t.Errorf("IP addresses %v", server.IPAddresses)
	}
	if err := server.VerifyHostname("localhost"); err == nil {
		t.Error("server certificate valid for localhost")
	}

	// Each call has its own CA.
	other := New(t)
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, other.CACert))
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
		t.Error("server certificate chains to another call's CA")
	}
}
