package node

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/store"
)

// TokenFile in HOME holds the API token of a daemon that requires one, so
// the CLI on the same machine finds it. It is written with mode 0600.
const TokenFile = "api.token"

// bearerPrefix starts the Authorization header the API expects.
const bearerPrefix = "Bearer "

// ErrExposed means the API would listen beyond loopback without a token.
var ErrExposed = errors.New("API exposed without a token")

// Secret is a credential. It prints and logs as "REDACTED", so it never
// reaches a log by accident; string(s) gives the value.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// IsLoopback reports whether the API address host:port only accepts
// connections from this machine. An empty host means every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckExposure refuses an API address beyond loopback unless a token
// guards it: the API reads and writes files on this machine.
func CheckExposure(addr string, token Secret) error {
	if IsLoopback(addr) || token != "" {
		return nil
	}
	return fmt.Errorf("%w: api.addr %s is not a loopback address; set api.token (env ALLMENDE_API_TOKEN) so only holders of the token can use the API, or listen on 127.0.0.1", ErrExposed, addr)
}

// APIOption changes how ServeAPI serves.
type APIOption func(http.Handler) http.Handler

// WithToken makes the API answer only requests that carry
// "Authorization: Bearer <token>". An empty token leaves the API open.
func WithToken(token Secret) APIOption {
	return func(h http.Handler) http.Handler {
		if token == "" {
			return h
		}
		want := []byte(bearerPrefix + string(token))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]*apiError{"error": {
					Message: "missing or wrong API token (send Authorization: Bearer <api.token>)",
					Kind:    "unauthorized",
				}})
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// WriteTokenFile records the daemon's API token in home for local clients.
func WriteTokenFile(home string, token Secret) error {
	return store.WriteFileAtomic(filepath.Join(home, TokenFile), []byte(string(token)+"\n"), 0o600)
}

// RemoveTokenFile removes the token file at shutdown.
func RemoveTokenFile(home string) error {
	err := os.Remove(filepath.Join(home, TokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReadTokenFile returns the token a daemon recorded in home, or "".
func ReadTokenFile(home string) (Secret, error) {
	raw, err := os.ReadFile(filepath.Join(home, TokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	return Secret(strings.TrimSpace(string(raw))), nil
}
