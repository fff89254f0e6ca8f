package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

func TestWithToken(t *testing.T) {
	const token = "s3cret-token"
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := WithToken(token)(ok)
	tests := []struct {
		name   string
		header string
		status int
	}{
		{"no header is refused", "", http.StatusUnauthorized},
		{"a wrong token is refused", "Bearer nope", http.StatusUnauthorized},
		{"the token without Bearer is refused", token, http.StatusUnauthorized},
		{"a token prefix is refused", "Bearer " + token[:4], http.StatusUnauthorized},
		{"the right token passes", "Bearer " + token, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, routeID, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if strings.Contains(w.Body.String(), token) {
				t.Error("the answer contains the token")
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	const token = "s3cret-token"
	cfg := Config{APIToken: token}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "token", cfg.APIToken, "cfg", cfg)
	out := buf.String() + fmt.Sprintf("%v %+v %s", cfg.APIToken, cfg, cfg.APIToken)
	if strings.Contains(out, token) {
		t.Errorf("the token was printed: %s", out)
	}
}
