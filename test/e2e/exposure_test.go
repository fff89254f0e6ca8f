package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// apiToken is the token the exposure test configures; it must appear in
// no log or output.
const apiToken = "e2e-secret-token-7f3a"

func TestAPIExposure(t *testing.T) {
	t.Run("beyond loopback without a token the daemon refuses to start", func(t *testing.T) {
		n := harness.NewNode(t, "ALLMENDE_API_ADDR=0.0.0.0:0")
		r := n.Run("daemon")
		if r.Code != 1 || !strings.Contains(r.Stderr, "api.token") {
			t.Errorf("daemon on 0.0.0.0 without a token: exit %d, stderr %q", r.Code, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(n.Home, "api")); err == nil {
			t.Error("the refused daemon wrote HOME/api")
		}
	})

	t.Run("without a configured token the daemon makes one and keeps it", func(t *testing.T) {
		n := harness.NewNode(t)
		n.Start()
		token := n.APIToken()
		info, err := os.Stat(filepath.Join(n.Home, "api.token"))
		if token == "" || err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("HOME/api.token: %q, %v, mode %v; want a token, mode 0600", token, err, info.Mode().Perm())
		}
		resp, err := http.Get(n.API + "/api/v0/id")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("request without the token: %s, want 401", resp.Status)
		}
		if _, err := n.APIGet(nil, "/api/v0/id"); err != nil {
			t.Errorf("request with the token: %v", err)
		}
		if _, err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if n.APIToken() != token {
			t.Error("the token did not outlive the daemon")
		}
		n.Start()
		if n.APIToken() != token {
			t.Error("a restart changed the token")
		}
		var id map[string]any
		n.JSON(&id, "id", "--json")
		if strings.Contains(n.Log(), token) {
			t.Error("the daemon logged its token")
		}
	})

	t.Run("with a token, requests without it are refused", func(t *testing.T) {
		n := harness.NewNode(t, "ALLMENDE_API_TOKEN="+apiToken, "ALLMENDE_LOG_LEVEL=debug")
		n.Start()
		resp, err := http.Get(n.API + "/api/v0/id")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("request without a token: %s, want 401", resp.Status)
		}
		// The CLI sends the configured token...
		var id map[string]any
		n.JSON(&id, "id", "--json")
		show := n.MustRun("config", "show")
		// ...or, without one, the token the daemon keeps in HOME/api.token.
		n.Env = nil
		n.JSON(&id, "id", "--json")
		info, err := os.Stat(filepath.Join(n.Home, "api.token"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("HOME/api.token: %v, mode %v; want mode 0600", err, info.Mode().Perm())
		}
		if strings.Contains(n.Log(), apiToken) || strings.Contains(show, apiToken) {
			t.Errorf("the token was printed: daemon log %q, config show %q", n.Log(), show)
		}
	})
}
