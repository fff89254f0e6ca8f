package localapi

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
)

func TestCheckExposure(t *testing.T) {
	tests := []struct {
		name  string
		addr  string
		token Secret
		ok    bool
	}{
		{"loopback needs no token", "127.0.0.1:5080", "", true},
		{"IPv6 loopback needs no token", "[::1]:5080", "", true},
		{"localhost needs no token", "localhost:0", "", true},
		{"all interfaces without a token is refused", "0.0.0.0:5080", "", false},
		{"an empty host means all interfaces", ":5080", "", false},
		{"a LAN address without a token is refused", "192.168.1.10:5080", "", false},
		{"a LAN address with a token is allowed", "192.168.1.10:5080", "s3cret", true},
		{"a name that is not localhost is not trusted", "example.org:5080", "", false},
		{"an unparsable address is not trusted", "127.0.0.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckExposure(tt.addr, tt.token)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrExposed)) {
				t.Errorf("CheckExposure(%q, token set %v) = %v, want ok %v", tt.addr, tt.token != "", err, tt.ok)
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	const token = "s3cret-token"
	cfg := struct{ APIToken Secret }{APIToken: token} // as node.Config holds it
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "token", cfg.APIToken, "cfg", cfg)
	out := buf.String() + fmt.Sprintf("%v %+v %s", cfg.APIToken, cfg, cfg.APIToken)
	if strings.Contains(out, token) {
		t.Errorf("the token was printed: %s", out)
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		name  string
		token Secret
		ok    bool
	}{
		{"no configured token is fine (the daemon makes one)", "", true},
		{"a long printable token is fine", "e2e-secret-token-7f3a", true},
		{"a short token is refused", "s3cret", false},
		{"a space is refused", "abcdefgh ijklmnopq", false},
		{"a newline could split the header", "abcdefghijklmnop\nX: y", false},
		{"non-ASCII is refused", "abcdefghijklmnopä", false},
		{"an overlong token is refused", Secret(strings.Repeat("a", maxTokenLen+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckToken(tt.token)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, api.ErrBadInput)) {
				t.Errorf("CheckToken = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestEnsureTokenFile(t *testing.T) {
	const configured = "configured-token-0123"
	tests := []struct {
		name string
		// before is the file's content before the start, nil for none.
		before     []byte
		mode       os.FileMode
		configured Secret
		// want is the token expected; "" means a new random one.
		want Secret
	}{
		{"first start makes a token", nil, 0, "", ""},
		{"a kept token is reused", []byte("kept-token-abcdefghij\n"), 0o600, "", "kept-token-abcdefghij"},
		{"a configured token wins over the file", []byte("kept-token-abcdefghij\n"), 0o600, configured, configured},
		{"an empty file gets a new token", []byte("\n"), 0o600, "", ""},
		{"a file readable by others is reused but made private", []byte("kept-token-abcdefghij"), 0o644, "", "kept-token-abcdefghij"},
		{"a kept token too short to be safe is replaced", []byte("short"), 0o600, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := home.Dir(dir).Token()
			if tt.before != nil {
				if err := os.WriteFile(path, tt.before, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			got, err := EnsureTokenFile(dir, tt.configured)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("token %q, want %q", got, tt.want)
			}
			if tt.want == "" && (CheckToken(got) != nil || strings.Contains(string(tt.before), string(got))) {
				t.Errorf("new token %q is not a fresh valid token", got)
			}
			info, err := os.Stat(path)
			if err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("HOME/api.token: %v, mode %v; want 0600", err, info.Mode().Perm())
			}
			read, err := ReadTokenFile(dir)
			if err != nil || read != got {
				t.Errorf("ReadTokenFile = %q, %v; want %q", read, err, got)
			}
			again, err := EnsureTokenFile(dir, tt.configured)
			if err != nil || again != got {
				t.Errorf("a restart gives %q, %v; want the same token %q", again, err, got)
			}
		})
	}
}
