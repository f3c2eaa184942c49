// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// AuthMode says whether the webhook requires credentials.
type AuthMode string

// The authentication modes of the webhook.
const (
	// AuthRequired (the default) accepts only requests with the bearer token
	// or the basic-auth user and password.
	AuthRequired AuthMode = "required"
	// AuthNone accepts every request. Anyone who reaches the port can then
	// ask tierscaler to activate any function it watches.
	AuthNone AuthMode = "none"
)

// ParseAuthMode reads a --webhook-auth value.
func ParseAuthMode(s string) (AuthMode, error) {
	switch m := AuthMode(strings.ToLower(strings.TrimSpace(s))); m {
	case AuthRequired, "":
		return AuthRequired, nil
	case AuthNone:
		return AuthNone, nil
	}
	return "", fmt.Errorf("webhook auth mode %q: want %q or %q", s, AuthRequired, AuthNone)
}

// DefaultBasicAuthUser is the user of OpenFaaS's basic-auth Secret
// (basic-auth-user), which OpenFaaS CE's Alertmanager sends.
const DefaultBasicAuthUser = "admin"

// DefaultAuthReload is how often the credential files are checked for a
// change (a rotated Secret).
const DefaultAuthReload = 10 * time.Second

// AuthOptions configure an Authenticator. With AuthRequired at least one
// credential must be given; a token and a basic-auth pair may both be, and
// then either is accepted. A file and a literal of the same kind are
// mutually exclusive.
type AuthOptions struct {
	Mode AuthMode
	// TokenFile holds the bearer token (surrounding white space, such as
	// the newline of a Secret written by hand, is ignored).
	TokenFile string
	// BasicAuthFile holds "user:password" on one line.
	BasicAuthFile string
	// BasicAuthPasswordFile holds only the basic-auth password, as the
	// OpenFaaS Secret basic-auth stores it under basic-auth-password; the
	// user is BasicAuthUser. This is what OpenFaaS CE's Alertmanager sends
	// to the gateway (username admin, password_file from that Secret), so
	// its receiver can be pointed at tierscaler with only a URL change.
	// Surrounding white space is ignored, as Alertmanager ignores it.
	BasicAuthPasswordFile string
	// BasicAuthUser is the user that goes with BasicAuthPasswordFile
	// (default DefaultBasicAuthUser).
	BasicAuthUser string
	// Token and BasicAuth are the same credentials given directly, for
	// tests and programs.
	Token     string
	BasicAuth string
	// Reload is how often the files are checked for a change (default
	// DefaultAuthReload); a file that cannot be read keeps the last good
	// credentials.
	Reload time.Duration
	Log    logr.Logger
}

// Authenticator checks a webhook request's credentials in constant time.
type Authenticator struct {
	o AuthOptions

	mu        sync.Mutex
	creds     credentials
	checked   time.Time
	stamps    map[string]fileStamp
	reloadErr string
}

type credentials struct {
	token          *[32]byte
	user, password *[32]byte
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewAuthenticator reads the credentials. An error names the file or the
// option that is wrong.
func NewAuthenticator(o AuthOptions) (*Authenticator, error) {
	mode, err := ParseAuthMode(string(o.Mode))
	if err != nil {
		return nil, err
	}
	o.Mode = mode
	if o.Reload <= 0 {
		o.Reload = DefaultAuthReload
	}
	a := &Authenticator{o: o, stamps: map[string]fileStamp{}}
	if mode == AuthNone {
		return a, nil
	}
	switch {
	case o.TokenFile != "" && o.Token != "":
		return nil, errors.New("webhook auth: give the token as a file or directly, not both")
	case o.BasicAuthFile != "" && o.BasicAuth != "":
		return nil, errors.New("webhook auth: give the basic-auth credentials as a file or directly, not both")
	case o.BasicAuthPasswordFile != "" && (o.BasicAuthFile != "" || o.BasicAuth != ""):
		return nil, errors.New("webhook auth: give the basic-auth credentials as one user:password file or as a password file with its user, not both")
	case o.BasicAuthUser != "" && o.BasicAuthPasswordFile == "":
		return nil, errors.New("webhook auth: a basic-auth user is set without a basic-auth password file")
	case strings.ContainsAny(o.BasicAuthUser, ":\r\n"):
		return nil, fmt.Errorf("webhook auth: the basic-auth user %q holds a colon or a line break", o.BasicAuthUser)
	case o.TokenFile == "" && o.Token == "" && o.BasicAuthFile == "" && o.BasicAuth == "" && o.BasicAuthPasswordFile == "":
		return nil, errors.New("webhook auth is required but no credentials are configured: set --webhook-token-file, --webhook-basic-auth-file or --webhook-basic-auth-password-file (or --webhook-auth=none to accept unauthenticated requests, not recommended)")
	}
	if o.BasicAuthPasswordFile != "" && o.BasicAuthUser == "" {
		o.BasicAuthUser = DefaultBasicAuthUser
		a.o.BasicAuthUser = DefaultBasicAuthUser
	}
	c, err := a.load()
	if err != nil {
		return nil, err
	}
	a.creds, a.checked = c, time.Now()
	return a, nil
}

// Mode is the authenticator's mode.
func (a *Authenticator) Mode() AuthMode { return a.o.Mode }

// load reads the credentials and records the files' stamps.
func (a *Authenticator) load() (credentials, error) {
	var c credentials
	if tok, err := a.read(a.o.TokenFile, a.o.Token, "token"); err != nil {
		return c, err
	} else if tok != "" {
		if strings.ContainsAny(tok, " \t\r\n") {
			return c, fmt.Errorf("webhook auth: the token%s holds white space", from(a.o.TokenFile))
		}
		h := sha256.Sum256([]byte(tok))
		c.token = &h
	}
	if pair, err := a.read(a.o.BasicAuthFile, a.o.BasicAuth, "basic-auth credentials"); err != nil {
		return c, err
	} else if pair != "" {
		user, pass, ok := strings.Cut(pair, ":")
		if !ok || user == "" || pass == "" || strings.ContainsAny(pair, "\r\n") {
			return c, fmt.Errorf("webhook auth: the basic-auth credentials%s must be one line user:password with neither part empty", from(a.o.BasicAuthFile))
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		c.user, c.password = &u, &p
	}
	if a.o.BasicAuthPasswordFile != "" {
		pass, err := a.read(a.o.BasicAuthPasswordFile, "", "basic-auth password")
		if err != nil {
			return c, err
		}
		if strings.ContainsAny(pass, "\r\n") {
			return c, fmt.Errorf("webhook auth: the basic-auth password%s holds a line break", from(a.o.BasicAuthPasswordFile))
		}
		u, p := sha256.Sum256([]byte(a.o.BasicAuthUser)), sha256.Sum256([]byte(pass))
		c.user, c.password = &u, &p
	}
	return c, nil
}

func from(file string) string {
	if file == "" {
		return ""
	}
	return " in " + file
}

// read returns the trimmed content of file, or literal when file is empty.
// An empty file is an error.
func (a *Authenticator) read(file, literal, what string) (string, error) {
	if file == "" {
		return strings.TrimSpace(literal), nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("webhook auth: read the %s: %w", what, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("webhook auth: read the %s: %w", what, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("webhook auth: the %s file %s is empty", what, file)
	}
	a.stamps[file] = fileStamp{st.ModTime(), st.Size()}
	return s, nil
}

// current returns the credentials, reloading the files when one changed.
func (a *Authenticator) current() credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	if (a.o.TokenFile == "" && a.o.BasicAuthFile == "" && a.o.BasicAuthPasswordFile == "") || time.Since(a.checked) < a.o.Reload {
		return a.creds
	}
	a.checked = time.Now()
	changed := false
	for _, f := range []string{a.o.TokenFile, a.o.BasicAuthFile, a.o.BasicAuthPasswordFile} {
		if f == "" {
			continue
		}
		st, err := os.Stat(f)
		if err != nil || a.stamps[f] != (fileStamp{st.ModTime(), st.Size()}) {
			changed = true
		}
	}
	if !changed {
		return a.creds
	}
	c, err := a.load()
	if err != nil {
		if err.Error() != a.reloadErr {
			a.o.Log.Error(err, "cannot reload the webhook credentials; keeping the previous ones")
			a.reloadErr = err.Error()
		}
		return a.creds
	}
	a.reloadErr = ""
	a.creds = c
	a.o.Log.Info("reloaded the webhook credentials")
	return c
}

// Authenticate reports whether r carries valid credentials (always true in
// AuthNone mode). The comparison takes the same time whatever the guess.
func (a *Authenticator) Authenticate(r *http.Request) bool {
	if a.o.Mode == AuthNone {
		return true
	}
	c := a.current()
	h := r.Header.Get("Authorization")
	scheme, value, _ := strings.Cut(strings.TrimSpace(h), " ")
	value = strings.TrimSpace(value)
	switch {
	case strings.EqualFold(scheme, "Bearer") && c.token != nil && value != "":
		got := sha256.Sum256([]byte(value))
		return subtle.ConstantTimeCompare(got[:], c.token[:]) == 1
	case strings.EqualFold(scheme, "Basic") && c.user != nil:
		user, pass, ok := r.BasicAuth()
		if !ok {
			return false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		return subtle.ConstantTimeCompare(u[:], c.user[:])&subtle.ConstantTimeCompare(p[:], c.password[:]) == 1
	}
	return false
}

// Challenges are the WWW-Authenticate values of a 401 answer.
func (a *Authenticator) Challenges() []string {
	c := a.current()
	var out []string
	if c.token != nil {
		out = append(out, `Bearer realm="tierscaler"`)
	}
	if c.user != nil {
		out = append(out, `Basic realm="tierscaler", charset="UTF-8"`)
	}
	return out
}
