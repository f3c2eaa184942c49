// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long the generated certificates are valid. A local
// cluster started with hack/cluster may run for days.
const certValidity = 365 * 24 * time.Hour

// pki holds the generated credentials of one environment, all signed by
// one throwaway CA, and the paths they are written to.
type pki struct {
	caCert *x509.Certificate
	caKey  crypto.Signer

	caPEM                         []byte
	servingCertPEM, servingKeyPEM []byte
	adminCertPEM, adminKeyPEM     []byte
	saKeyPEM, saPubPEM            []byte

	// Files, under <dir>/pki.
	caFile, caKeyFile           string
	servingCert, servingKey     string
	adminCertFile, adminKeyFile string
	saKeyFile, saPubFile        string
}

// newPKI generates a CA, a serving certificate for 127.0.0.1 and localhost
// (used by every TLS server of the environment), an admin client
// certificate in the group system:masters and the service-account signing
// key pair. It uses ECDSA P-256: generation takes microseconds.
func newPKI() (*pki, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "tierscaler-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &pki{caCert: caCert, caKey: caKey, caPEM: pemBlock("CERTIFICATE", caDER)}

	p.servingCertPEM, p.servingKeyPEM, err = p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	p.adminCertPEM, p.adminKeyPEM, err = p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "tierscaler-testenv-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.saKeyPEM, err = privateKeyPEM(saKey); err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	p.saPubPEM = pemBlock("PUBLIC KEY", saPub)
	return p, nil
}

// issue signs a leaf certificate for tmpl with a fresh key.
func (p *pki) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = p.caCert.NotBefore
	tmpl.NotAfter = p.caCert.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = privateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// write stores the credentials under dir (private keys with mode 0600)
// and records their paths.
func (p *pki) write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKeyPEM, err := privateKeyPEM(p.caKey)
	if err != nil {
		return err
	}
	files := []struct {
		path *string
		name string
		data []byte
		mode os.FileMode
	}{
		{&p.caFile, "ca.crt", p.caPEM, 0o644},
		{&p.caKeyFile, "ca.key", caKeyPEM, 0o600},
		{&p.servingCert, "serving.crt", p.servingCertPEM, 0o644},
		{&p.servingKey, "serving.key", p.servingKeyPEM, 0o600},
		{&p.adminCertFile, "admin.crt", p.adminCertPEM, 0o644},
		{&p.adminKeyFile, "admin.key", p.adminKeyPEM, 0o600},
		{&p.saKeyFile, "sa.key", p.saKeyPEM, 0o600},
		{&p.saPubFile, "sa.pub", p.saPubPEM, 0o644},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// tlsConfig returns a client TLS configuration that trusts the CA and
// presents the admin certificate.
func (p *pki) tlsConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.caCert)
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func privateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial is still valid.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
