package localapi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/store/fsutil"
)

// Token limits.
const (
	// minTokenLen is the shortest api.token accepted: a token guards an
	// API that reads and writes this machine's files.
	minTokenLen = 16
	// maxTokenLen bounds a token read from the config or HOME/api.token.
	maxTokenLen = 512
)

// bearerPrefix starts the Authorization header the API expects.
const bearerPrefix = "Bearer "

// ErrExposed means the API would listen beyond loopback without a token
// the owner chose.
var ErrExposed = errors.New("API exposed without a configured token")

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

// CheckExposure refuses an API address beyond loopback unless the owner
// configured api.token. Every request needs a token anyway (the daemon
// makes one in HOME/api.token), but that one never leaves this machine:
// listening beyond loopback is only useful to clients elsewhere, which
// need a token the owner chose and handed out, and asking for it makes
// the exposure a deliberate act rather than a typo in api.addr.
func CheckExposure(addr string, configured Secret) error {
	if IsLoopback(addr) || configured != "" {
		return nil
	}
	return fmt.Errorf("%w: api.addr %s is not a loopback address; set api.token (env ALLMENDE_API_TOKEN) so only holders of the token can use the API, or listen on 127.0.0.1", ErrExposed, addr)
}

// CheckToken refuses a configured api.token that is too short, too long, or
// holds anything but printable ASCII without spaces (it travels in an HTTP
// header). An empty token means none is configured and passes.
func CheckToken(token Secret) error {
	if token == "" {
		return nil
	}
	if len(token) < minTokenLen || len(token) > maxTokenLen {
		return fmt.Errorf("%w: api.token must be %d to %d characters long", api.ErrBadInput, minTokenLen, maxTokenLen)
	}
	for _, c := range []byte(token) {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("%w: api.token may hold only printable ASCII characters without spaces", api.ErrBadInput)
		}
	}
	return nil
}

// EnsureTokenFile returns the token the daemon on home requires and makes
// HOME/api.token (home.Dir.Token, mode 0600) hold it, so local clients find it: the
// configured token if there is one, else the token already in the file,
// else a new random one (128 bits from crypto/rand). The file is rewritten
// every time, which also restores its mode.
func EnsureTokenFile(dir string, configured Secret) (Secret, error) {
	token := configured
	if token == "" {
		kept, err := ReadTokenFile(dir)
		if err != nil {
			return "", err
		}
		if CheckToken(kept) == nil {
			token = kept
		}
	}
	if token == "" {
		token = Secret(rand.Text())
	}
	if err := fsutil.WriteFileAtomic(home.Dir(dir).Token(), []byte(string(token)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write API token: %w", err)
	}
	return token, nil
}

// ReadTokenFile returns the token a daemon recorded in the home directory
// dir, or "".
func ReadTokenFile(dir string) (Secret, error) {
	f, err := os.Open(home.Dir(dir).Token())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxTokenLen+2)) // the token and a newline
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	return Secret(strings.TrimSpace(string(raw))), nil
}
