// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
)

// WebConfig is a web configuration file (the --web.config.file of
// Prometheus and Alertmanager) that serves TLS with a certificate of a
// throwaway CA and requires basic auth: a Prometheus or an Alertmanager as
// they are deployed behind auth, for tests of the clients that reach them.
type WebConfig struct {
	// File is the web configuration, for --web.config.file.
	File string
	// CAFile holds the PEM certificate of the CA that signed the serving
	// certificate: a client's tls_config.ca_file.
	CAFile string
	// ServerName is a DNS name of the serving certificate (localhost), for
	// a client's tls_config.server_name; it is also valid for 127.0.0.1.
	ServerName string
	// User and Password are the basic-auth credentials the servers accept;
	// PasswordFile holds the password (no newline), for a client's
	// basic_auth.password_file.
	User, Password, PasswordFile string

	ca *x509.Certificate
}

// NewWebConfig writes, under dir, a CA, a serving certificate for
// 127.0.0.1 and localhost signed by it, the password file and the web
// configuration requiring user and password (stored bcrypt-hashed, as the
// servers require).
func NewWebConfig(dir, user, password string) (*WebConfig, error) {
	if user == "" || password == "" {
		return nil, errors.New("testenv: a web configuration needs a user and a password")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := newPKI()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: serving certificate: %w", err)
	}
	// The lowest cost: the servers check the hash on every request.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	w := &WebConfig{
		File:         filepath.Join(dir, "web-config.yml"),
		CAFile:       filepath.Join(dir, "ca.crt"),
		ServerName:   "localhost",
		User:         user,
		Password:     password,
		PasswordFile: filepath.Join(dir, "password"),
		ca:           p.caCert,
	}
	cfg, err := yaml.Marshal(map[string]any{
		"tls_server_config": map[string]string{
			"cert_file": filepath.Join(dir, "server.crt"),
			"key_file":  filepath.Join(dir, "server.key"),
		},
		"basic_auth_users": map[string]string{user: string(hash)},
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{w.CAFile, p.caPEM},
		{filepath.Join(dir, "server.crt"), certPEM},
		{filepath.Join(dir, "server.key"), keyPEM},
		{w.PasswordFile, []byte(password)},
		{w.File, cfg},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Client returns an HTTP client that trusts the CA and sends the
// credentials: the tests' own view of the servers, independent of the
// client under test.
func (w *WebConfig) Client() *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(w.ca)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &basicAuthTransport{user: w.User, password: w.Password, next: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		}},
	}
}

type basicAuthTransport struct {
	user, password string
	next           http.RoundTripper
}

func (t *basicAuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(t.user, t.password)
	return t.next.RoundTrip(req)
}

// WebServer is a Prometheus or an Alertmanager started with a WebConfig.
type WebServer struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// Dir holds its configuration, data and log.
	Dir string
	Log string

	p *Process
}

// StartPrometheusWeb starts the real Prometheus (from PATH) behind w, with
// no scrape targets, in a new directory under parent, and waits until it
// answers /-/ready with w's credentials. Stop it with Stop.
func StartPrometheusWeb(ctx context.Context, w *WebConfig, parent string) (*WebServer, error) {
	bin, err := lookPath("prometheus")
	if err != nil {
		return nil, err
	}
	return startWeb(ctx, w, parent, Prometheus, func(dir, listen string) ([]string, error) {
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1s\n"), 0o600); err != nil {
			return nil, err
		}
		return []string{bin,
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + listen,
			"--web.config.file=" + w.File,
		}, nil
	})
}

// StartAlertmanagerWeb starts the real Alertmanager (prometheus-alertmanager
// or alertmanager from PATH) behind w, with one receiver that sends nothing
// and gossip off, as StartPrometheusWeb does.
func StartAlertmanagerWeb(ctx context.Context, w *WebConfig, parent string) (*WebServer, error) {
	bin, err := lookPath("prometheus-alertmanager", "alertmanager")
	if err != nil {
		return nil, err
	}
	return startWeb(ctx, w, parent, Alertmanager, func(dir, listen string) ([]string, error) {
		cfg := filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(cfg, []byte("route: {receiver: none}\nreceivers: [{name: none}]\n"), 0o600); err != nil {
			return nil, err
		}
		return []string{bin,
			"--config.file=" + cfg,
			"--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + listen,
			"--cluster.listen-address=",
			"--web.config.file=" + w.File,
		}, nil
	})
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", &MissingBinaryError{Names: names}
}

// startWeb starts the server argv returns on a free port, trying another
// port when the process exits at once (the port was taken meanwhile).
func startWeb(ctx context.Context, w *WebConfig, parent, name string, argv func(dir, listen string) ([]string, error)) (*WebServer, error) {
	// The directory name holds "tierscaler-testenv-": hack/check-leftovers.sh
	// finds a process a crashed run left behind.
	dir, err := os.MkdirTemp(parent, "tierscaler-testenv-"+name+"-")
	if err != nil {
		return nil, err
	}
	client := w.Client()
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		listen := hostPort(port)
		args, err := argv(dir, listen)
		if err != nil {
			return nil, err
		}
		s := &WebServer{URL: "https://" + listen, Dir: dir, Log: filepath.Join(dir, name+".log")}
		if s.p, err = StartProcess(name, args, s.Log, dir); err != nil {
			return nil, err
		}
		if last = s.waitReady(ctx, client, name); last == nil {
			return s, nil
		}
		_ = s.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// waitReady polls /-/ready for up to a minute.
func (s *WebServer) waitReady(ctx context.Context, client *http.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	last := errors.New("not probed yet")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("GET /-/ready: %s", resp.Status)
		} else {
			last = err
		}
		select {
		case <-s.p.Exited():
			return &ComponentError{Component: name, Op: "start", Log: s.Log, Tail: tailLines(s.Log, 10), Err: s.p.ExitError()}
		case <-ctx.Done():
			return &ComponentError{Component: name, Op: "start", Log: s.Log, Tail: tailLines(s.Log, 10), Err: fmt.Errorf("not ready: %w", last)}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGTERM, SIGKILL after 5s).
func (s *WebServer) Stop() error { return s.p.Stop(5 * time.Second) }

// freePort returns a port free on 127.0.0.1 at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", hostPort(0))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
