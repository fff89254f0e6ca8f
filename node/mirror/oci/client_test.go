package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// cdn is a fake blob CDN: it serves what the registry redirects to, and
// lets a test change the bytes behind a digest.
type cdn struct {
	srv      *httptest.Server
	mu       sync.Mutex
	blobs    map[string][]byte
	requests atomic.Int64
	authSeen atomic.Int64
}

func newCDN(t *testing.T) *cdn {
	c := &cdn{blobs: map[string][]byte{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			c.authSeen.Add(1)
		}
		c.mu.Lock()
		b, ok := c.blobs[strings.TrimPrefix(r.URL.Path, "/cdn/")]
		c.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// url is the CDN's address for a blob, under the name "localhost" so the
// registry (127.0.0.1) and the CDN are different hosts, as in real life.
func (c *cdn) url(h v1.Hash) string {
	u, _ := url.Parse(c.srv.URL)
	return "http://localhost:" + u.Port() + "/cdn/" + h.String()
}

func (c *cdn) set(h string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobs[h] = b
}

// redirectingBlobs is go-containerregistry's in-memory blob store that
// keeps what is pushed and answers every read with a redirect to the CDN.
type redirectingBlobs struct {
	inner registry.BlobHandler
	cdn   *cdn
}

func (b *redirectingBlobs) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	if _, err := b.Stat(ctx, repo, h); err != nil {
		return nil, err
	}
	return nil, registry.RedirectError{Location: b.cdn.url(h), Code: http.StatusTemporaryRedirect}
}

func (b *redirectingBlobs) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	return b.inner.(registry.BlobStatHandler).Stat(ctx, repo, h)
}

func (b *redirectingBlobs) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.cdn.set(h.String(), data)
	return b.inner.(registry.BlobPutHandler).Put(ctx, repo, h, io.NopCloser(bytes.NewReader(data)))
}

// upstream is a real registry (go-containerregistry's pkg/registry) behind
// anonymous token auth, with its blobs on a CDN.
type upstream struct {
	srv           *httptest.Server
	cdn           *cdn
	tokenRequests atomic.Int64
	badScopes     atomic.Int64
	otherAgents   atomic.Int64
}

const testToken = "anon-token-1"

func newUpstream(t *testing.T) *upstream {
	u := &upstream{cdn: newCDN(t)}
	reg := registry.New(registry.WithBlobHandler(&redirectingBlobs{inner: registry.NewInMemoryBlobHandler(), cdn: u.cdn}),
		registry.Logger(log.New(io.Discard, "", 0)))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("User-Agent") != UserAgent {
			u.otherAgents.Add(1)
		}
		if r.URL.Path == "/token" {
			u.token(w, r)
			return
		}
		rt, ok := parseRoute(r.URL.EscapedPath())
		if ok && rt.kind != "base" && r.Method == http.MethodGet && r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test-registry",scope="repository:%s:pull"`, r.Host, rt.name))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) token(w http.ResponseWriter, r *http.Request) {
	u.tokenRequests.Add(1)
	q := r.URL.Query()
	if q.Get("service") != "test-registry" || !strings.HasPrefix(q.Get("scope"), "repository:") {
		u.badScopes.Add(1)
	}
	json.NewEncoder(w).Encode(map[string]any{"token": testToken, "expires_in": 300})
}

// push stores a manifest and its blobs through the registry's push API
// (pushes need no token here, as if made by its owner).
func (u *upstream) push(t *testing.T, name, tag, mediaType string, manifest []byte, blobs map[digest.Digest][]byte) {
	t.Helper()
	for d, b := range blobs {
		req, _ := http.NewRequest(http.MethodPost, u.srv.URL+"/v2/"+name+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b))
		mustStatus(t, req, http.StatusCreated)
	}
	req, _ := http.NewRequest(http.MethodPut, u.srv.URL+"/v2/"+name+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Content-Type", mediaType)
	mustStatus(t, req, http.StatusCreated)
}

func mustStatus(t *testing.T, req *http.Request, status int) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
}

// ollamaModel is an Ollama-shaped model: its manifest and blobs.
func ollamaModel(t *testing.T) ([]byte, map[digest.Digest][]byte) {
	r := newRepo()
	m := ollamaManifest(t, r, append([]byte("GGUF\x03\x00\x00\x00"), bytes.Repeat([]byte("weights"), 3000)...))
	return m, r.blobs
}

func newTestClient(t *testing.T, endpoint string) *Client {
	c, err := NewClient(endpoint, &http.Client{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestClientPullsThroughTokenAndCDN(t *testing.T) {
	up := newUpstream(t)
	manifest, blobs := ollamaModel(t)
	up.push(t, "library/tiny", "latest", MediaTypeDockerManifest, manifest, blobs)
	c := newTestClient(t, up.srv.URL)
	ctx := context.Background()

	m, err := c.Manifest(ctx, "library/tiny", Reference{Tag: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, manifest) || m.MediaType != MediaTypeDockerManifest {
		t.Fatalf("manifest %s %q differs from the one pushed", m.MediaType, m.Data)
	}
	byDigest, err := c.Manifest(ctx, "library/tiny", Reference{Digest: m.Digest()})
	if err != nil || !bytes.Equal(byDigest.Data, manifest) {
		t.Fatalf("by digest: %v", err)
	}
	p, err := ParseManifest(m.MediaType, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Blobs() {
		got, err := readAll(c.Blob(ctx, "library/tiny", d.Digest, d.Size))
		if err != nil || !bytes.Equal(got, blobs[d.Digest]) {
			t.Errorf("blob %s (%s): %d bytes, %v", d.Digest, d.MediaType, len(got), err)
		}
	}
	if n := up.tokenRequests.Load(); n != 1 || up.badScopes.Load() != 0 {
		t.Errorf("%d token requests (%d with a bad scope), want 1: the token is kept for the repository", n, up.badScopes.Load())
	}
	if up.cdn.requests.Load() != int64(len(p.Blobs())) {
		t.Errorf("the CDN served %d requests, want one per blob (%d)", up.cdn.requests.Load(), len(p.Blobs()))
	}
	if up.otherAgents.Load() != 0 {
		t.Errorf("%d GETs did not name allmende as their User-Agent", up.otherAgents.Load())
	}
	if up.cdn.authSeen.Load() != 0 {
		t.Errorf("the registry's token reached the CDN %d times", up.cdn.authSeen.Load())
	}

	tests := []struct {
		why  string
		call func() error
		want error
	}{
		{"an unknown tag", func() error { _, err := c.Manifest(ctx, "library/tiny", Reference{Tag: "70b"}); return err }, ErrManifestUnknown},
		{"an unknown repository", func() error { _, err := c.Manifest(ctx, "library/none", Reference{Tag: "latest"}); return err }, ErrNameUnknown},
		{"an unknown blob", func() error {
			_, err := c.Blob(ctx, "library/tiny", digest.SHA256.FromString("none"), 4)
			return err
		}, ErrBlobUnknown},
		{"a bad name is never sent", func() error { _, err := c.Manifest(ctx, "../etc", Reference{Tag: "x"}); return err }, ErrInvalid},
		{"a bad digest is never sent", func() error { _, err := c.Blob(ctx, "library/tiny", "sha256:../../x", 1); return err }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestClientRefusesTamperedBlobs(t *testing.T) {
	up := newUpstream(t)
	manifest, blobs := ollamaModel(t)
	up.push(t, "library/tiny", "latest", MediaTypeDockerManifest, manifest, blobs)
	c := newTestClient(t, up.srv.URL)
	p, _ := ParseManifest(MediaTypeDockerManifest, manifest)
	model := p.Layers[0]
	good := blobs[model.Digest]
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	tests := []struct {
		why  string
		cdn  []byte
		size int64
	}{
		{"one flipped byte, same length: caught at EOF", flipped, model.Size},
		{"a shorter body", good[:len(good)-1], model.Size},
		{"a longer body", append(bytes.Clone(good), 0), model.Size},
		{"one flipped byte when the size is not known", flipped, -1},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			up.cdn.set(model.Digest.String(), tt.cdn)
			got, err := readAll(c.Blob(context.Background(), "library/tiny", model.Digest, tt.size))
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("read %d bytes, err = %v; want ErrMismatch", len(got), err)
			}
		})
	}
}

// lyingUpstream answers every manifest request with body, declaring
// declared as its digest.
func lyingUpstream(t *testing.T, body []byte, declared string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MediaTypeDockerManifest)
		if declared != "" {
			w.Header().Set(DigestHeader, declared)
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientRefusesBadManifests(t *testing.T) {
	manifest, _ := ollamaModel(t)
	real := digest.SHA256.FromBytes(manifest)
	other := digest.SHA256.FromString("other")
	huge := append([]byte(`{"schemaVersion":2,"pad":"`), bytes.Repeat([]byte("x"), MaxManifestBytes)...)
	tests := []struct {
		why      string
		endpoint string
		ref      Reference
		want     error
	}{
		{"bytes that do not hash to the digest asked for", lyingUpstream(t, manifest, ""), Reference{Digest: other}, ErrMismatch},
		{"a declared digest the bytes do not hash to", lyingUpstream(t, manifest, other.String()), Reference{Tag: "latest"}, ErrMismatch},
		{"more than MaxManifestBytes, no length declared", lyingUpstream(t, append(huge, `"}`...), ""), Reference{Tag: "latest"}, ErrInvalid},
		{"a length over the limit is refused before reading", oversizedUpstream(t), Reference{Tag: "latest"}, ErrUpstream},
		{"not a manifest", lyingUpstream(t, []byte("GGUF...."), ""), Reference{Tag: "latest"}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			_, err := newTestClient(t, tt.endpoint).Manifest(context.Background(), "library/tiny", tt.ref)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// The honest case through the same server passes.
	m, err := newTestClient(t, lyingUpstream(t, manifest, real.String())).Manifest(context.Background(), "library/tiny", Reference{Digest: real})
	if err != nil || m.Digest() != real {
		t.Errorf("honest upstream: %v", err)
	}
}

// oversizedUpstream declares a manifest of MaxManifestBytes+1 and sends
// only its first bytes, so a client that waited for the body would hang
// until the server closes.
func oversizedUpstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MediaTypeDockerManifest)
		w.Header().Set("Content-Length", fmt.Sprint(MaxManifestBytes+1))
		w.Write([]byte(`{"schemaVersion":2`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientAuthRefusals(t *testing.T) {
	tests := []struct {
		why       string
		challenge string
		want      error
	}{
		{"basic auth only: no anonymous access", `Basic realm="registry"`, ErrDenied},
		{"a realm on another host over plain http", `Bearer realm="http://203.0.113.7/token",service="x"`, ErrUpstream},
		{"a realm with credentials", `Bearer realm="https://user:pw@auth.example/token"`, ErrUpstream},
		{"a realm that is no URL", `Bearer realm="::"`, ErrUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("WWW-Authenticate", tt.challenge)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer srv.Close()
			_, err := newTestClient(t, srv.URL).Manifest(context.Background(), "library/tiny", Reference{Tag: "latest"})
			if !errors.Is(err, tt.want) || hits.Load() != 1 {
				t.Errorf("err = %v after %d requests, want %v after 1", err, hits.Load(), tt.want)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		why    string
		values []string
		want   challenge
		ok     bool
	}{
		{"Docker Hub's form", []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			challenge{"https://auth.docker.io/token", "registry.docker.io", "repository:library/alpine:pull"}, true},
		{"lower-case scheme, spaces after commas", []string{`bearer realm="https://a/t", service="s"`}, challenge{realm: "https://a/t", service: "s"}, true},
		{"an escaped quote", []string{`Bearer realm="https://a/t",service="a\"b"`}, challenge{realm: "https://a/t", service: `a"b`}, true},
		{"an unquoted value", []string{`Bearer realm=https://a/t,service=s`}, challenge{realm: "https://a/t", service: "s"}, true},
		{"Bearer after Basic, as two headers", []string{`Basic realm="x"`, `Bearer realm="https://a/t"`}, challenge{realm: "https://a/t"}, true},
		{"no realm", []string{`Bearer service="s"`}, challenge{}, false},
		{"Basic only", []string{`Basic realm="x"`}, challenge{}, false},
		{"an over-long header", []string{`Bearer realm="` + strings.Repeat("a", MaxChallengeLength) + `"`}, challenge{}, false},
		{"an unterminated quote", []string{`Bearer realm="https://a/t`}, challenge{realm: "https://a/t"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, ok := parseChallenge(tt.values)
			if ok != tt.ok || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestClientAgainstHandler: the package's own server and client agree,
// byte for byte, on an Ollama model and on an index.
func TestClientAgainstHandler(t *testing.T) {
	srv, f := newHandlerServer(t)
	c := newTestClient(t, srv.URL)
	ctx := context.Background()
	for _, tc := range []struct{ name, tag string }{{"library/tiny", "latest"}, {"org/multi", "index"}} {
		m, err := c.Manifest(ctx, tc.name, Reference{Tag: tc.tag})
		if err != nil {
			t.Fatal(err)
		}
		stored := f.b.repos[tc.name].manifests[f.b.repos[tc.name].tags[tc.tag]]
		if !bytes.Equal(m.Data, stored.Data) || m.MediaType != stored.MediaType {
			t.Errorf("%s:%s: got %s, stored %s", tc.name, tc.tag, m.MediaType, stored.MediaType)
		}
		p, _ := ParseManifest(m.MediaType, m.Data)
		for _, d := range p.Blobs() {
			got, err := readAll(c.Blob(ctx, tc.name, d.Digest, d.Size))
			if err != nil || !bytes.Equal(got, f.b.repos[tc.name].blobs[d.Digest]) {
				t.Errorf("blob %s: %v", d.Digest, err)
			}
		}
	}
	if _, err := c.Manifest(ctx, "busy/model", Reference{Tag: "latest"}); !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("busy: %v", err)
	}
	if _, err := c.Manifest(ctx, "denied/model", Reference{Tag: "latest"}); !errors.Is(err, ErrDenied) {
		t.Errorf("denied: %v", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("some weights")
	d := digest.SHA256.FromBytes(data)
	tests := []struct {
		why  string
		body []byte
		size int64
		ok   bool
	}{
		{"matching bytes pass", data, int64(len(data)), true},
		{"matching bytes, size unknown", data, -1, true},
		{"one flipped byte is caught at EOF", []byte("some weighTs"), int64(len(data)), false},
		{"a short body is caught", data[:5], int64(len(data)), false},
		{"a long body is caught", append(bytes.Clone(data), '!'), int64(len(data)), false},
		{"the right bytes under a wrong size", data, int64(len(data)) + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			_, err := io.ReadAll(NewVerifyingReader(io.NopCloser(bytes.NewReader(tt.body)), d, tt.size))
			if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, ErrMismatch)) {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
