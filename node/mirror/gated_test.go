package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/node/mirror/hfapi"
)

// Tokens of the gated tests: the upstream accepts mirrorToken and
// aliceToken for its gated repository, not bobToken.
const (
	mirrorToken = "hf_mirror_SECRET_1"
	aliceToken  = "hf_alice_SECRET_2"
	bobToken    = "hf_bob_SECRET_3"
	testVersion = "9.8.7"
)

// gatedHub serves org/tiny, gated: only to the tokens it accepts, as the
// hub does (401 without a token, 403 GatedRepo with another one).
type gatedHub struct {
	repo    *hfapi.Repo
	content []byte
	accept  map[string]bool
}

func (h *gatedHub) check(ctx context.Context) error {
	switch t := hfapi.ClientToken(ctx); {
	case t == "":
		return hfapi.ErrRepoNotFound
	case !h.accept[t]:
		return hfapi.ErrGated
	}
	return nil
}

func (h *gatedHub) Repo(ctx context.Context, kind hfapi.Kind, name, rev string) (*hfapi.Repo, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	if kind != h.repo.Kind || name != h.repo.Name || (rev != h.repo.Revision && rev != h.repo.Commit) {
		return nil, hfapi.ErrRepoNotFound
	}
	return h.repo, nil
}

func (h *gatedHub) Open(ctx context.Context, _ *hfapi.Repo, _ hfapi.File) (io.ReadSeekCloser, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	return nopSeekCloser{bytes.NewReader(h.content)}, nil
}

// upstreamSeen records the Authorization and User-Agent of every request
// to an upstream, and adds the Xet headers the hub sends.
type upstreamSeen struct {
	next       http.Handler
	mu         sync.Mutex
	auth, ua   []string
	downloadBy []string // the Authorization of file downloads
}

func (u *upstreamSeen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.auth = append(u.auth, r.Header.Get("Authorization"))
	u.ua = append(u.ua, r.Header.Get("User-Agent"))
	if strings.Contains(r.URL.Path, "/resolve/") {
		u.downloadBy = append(u.downloadBy, r.Header.Get("Authorization"))
	}
	u.mu.Unlock()
	w.Header().Set("X-Xet-Hash", strings.Repeat("ab", 32))
	w.Header().Set("X-Xet-Refresh-Route", "/api/models/org/tiny/xet-read-token/main")
	w.Header().Add("Link", `<https://cas.example/auth>; rel="xet-auth", <https://cas.example/r>; rel="xet-reconstruction-info"`)
	u.next.ServeHTTP(w, r)
}

func (u *upstreamSeen) seen() (auth, ua, downloads []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...), append([]string(nil), u.ua...), append([]string(nil), u.downloadBy...)
}

// get asks the mirror for url with token (none if empty).
func get(t *testing.T, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// TestGatedRepos: the mirror's token (mirror.upstream_token) and a
// client's token go to the upstream only, and the client's only for a
// gated repository; a gated repository is served only to clients whose
// token the upstream accepts, unless mirror.serve_gated; it is never
// recorded as a model; no token reaches the log; the mirror names itself
// allmende/<version> upstream and passes no Xet header on to its clients.
func TestGatedRepos(t *testing.T) {
	type ask struct {
		token  string
		status int
	}
	tests := []struct {
		name        string
		mirrorToken string
		serveGated  bool
		asks        []ask  // in order
		downloadBy  string // the token the file was downloaded with
	}{
		{"mirror token, gated served to accepted clients only", mirrorToken, false,
			[]ask{{"", 403}, {bobToken, 403}, {aliceToken, 200}, {"", 403}, {bobToken, 403}, {aliceToken, 200}}, mirrorToken},
		{"mirror token, serve_gated", mirrorToken, true,
			[]ask{{"", 200}, {bobToken, 200}}, mirrorToken},
		{"no mirror token: filled with the client's", "", false,
			[]ask{{"", 401}, {bobToken, 403}, {aliceToken, 200}, {"", 401}, {aliceToken, 200}}, aliceToken},
	}
	content := testBytes(9, 1<<20+3)
	sum := sha256.Sum256(content)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := &gatedHub{content: content, accept: map[string]bool{mirrorToken: true, aliceToken: true},
				repo: &hfapi.Repo{Kind: hfapi.Model, Name: "org/tiny", Revision: "main", Commit: fillCommit, Gated: true,
					Files: []hfapi.File{{Path: "model.safetensors", Size: uint64(len(content)), SHA256: hex.EncodeToString(sum[:])}}}}
			seen := &upstreamSeen{next: hfapi.Handler(hub, slog.New(slog.DiscardHandler))}
			up := httptest.NewServer(seen)
			defer up.Close()
			var logged syncBuffer
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			m := newTestMirrorWith(t, up.URL, "", nil, log, func(c *Config) {
				c.UpstreamToken, c.ServeGated, c.Version = tt.mirrorToken, tt.serveGated, testVersion
			})
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()

			for i, a := range tt.asks {
				for _, path := range []string{"/api/models/org/tiny/revision/main", "/org/tiny/resolve/main/model.safetensors"} {
					code, h, body := get(t, srv.URL+path, a.token)
					if code != a.status {
						t.Errorf("ask %d (token %q) %s: status %d, want %d", i, a.token, path, code, a.status)
					}
					if strings.Contains(path, "resolve") && code == 200 && !bytes.Equal(body, content) {
						t.Errorf("ask %d: %d bytes, not the file", i, len(body))
					}
					for k, v := range h {
						if strings.HasPrefix(strings.ToLower(k), "x-xet") || strings.Contains(strings.ToLower(strings.Join(v, " ")), "xet") {
							t.Errorf("ask %d %s: the client got %s: %v", i, path, k, v)
						}
					}
				}
			}
			m.waitNoParts(t)
			auth, ua, downloads := seen.seen()
			for i := range auth {
				if auth[i] != "" && auth[i] != "Bearer "+mirrorToken && auth[i] != "Bearer "+aliceToken && auth[i] != "Bearer "+bobToken {
					t.Errorf("the upstream got Authorization %q", auth[i])
				}
				if tt.mirrorToken == "" && auth[i] == "Bearer "+mirrorToken {
					t.Errorf("a token nobody configured went upstream")
				}
				if ua[i] != "allmende/"+testVersion {
					t.Errorf("User-Agent %q, want allmende/%s", ua[i], testVersion)
				}
			}
			if len(downloads) != 1 || downloads[0] != "Bearer "+tt.downloadBy {
				t.Errorf("downloads with %q, want one with %s", downloads, tt.downloadBy)
			}
			time.Sleep(100 * time.Millisecond) // let a wrongly recorded model show
			if _, ok := m.models.Index().ByName("org/tiny", fillCommit); ok {
				t.Error("a gated repository was recorded as a model (served to all, seeded to peers)")
			}
			for _, secret := range []string{mirrorToken, aliceToken, bobToken, "SECRET"} {
				if strings.Contains(logged.String(), secret) {
					t.Errorf("the log holds a token: %s", logged.String())
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
