package hfapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an upstream that records the escaped paths it was asked for.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.paths = append(r.paths, req.URL.EscapedPath())
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

func newTestClient(t *testing.T, endpoint string, log *slog.Logger) *Client {
	t.Helper()
	c, err := NewClient(endpoint, Options{Log: log, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientRefusesBadRefs: names, revisions and paths that break the
// rules of manifests never reach the upstream.
func TestClientRefusesBadRefs(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "should not be asked", 500) })
	c := newTestClient(t, up.URL, nil)
	long := strings.Repeat("a", 200)
	good := File{Path: "model.bin", Size: 1, SHA256: strings.Repeat("0", 64)}
	tests := []struct {
		name      string
		repo, rev string
		path      string // for a download; empty: a repo lookup
	}{
		{"dot-dot as the repository", "org/..", "main", ""},
		{"dot-dot inside the name", "org/a..b", "main", ""},
		{"a third segment (an encoded slash, decoded)", "org/a/b", "main", ""},
		{"a NUL in the name", "org/a\x00b", "main", ""},
		{"a newline in the name", "org/a\nb", "main", ""},
		{"an overlong name", "org/" + long, "main", ""},
		{"an empty org", "/model", "main", ""},
		{"a space in the name", "org/a b", "main", ""},
		{"dot-dot in the revision", "org/m", "../../etc", ""},
		{"a revision ending in a slash", "org/m", "refs/", ""},
		{"a control character in the revision", "org/m", "ma\x1bin", ""},
		{"an overlong revision", "org/m", long, ""},
		{"dot-dot in a file path", "org/m", "main", "../../secret"},
		{"an empty segment in a file path", "org/m", "main", "a//b"},
		{"an absolute file path", "org/m", "main", "/etc/passwd"},
		{"a control character in a file path", "org/m", "main", "a\rb"},
		{"a backslash in a file path", "org/m", "main", `a\..\b`},
		{"an overlong file path", "org/m", "main", strings.Repeat("d/", 3000) + "f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.path == "" {
				_, err = c.Repo(context.Background(), Model, tt.repo, tt.rev)
			} else {
				f := good
				f.Path = tt.path
				_, err = c.Download(context.Background(), &Repo{Kind: Model, Name: tt.repo, Commit: commit}, f)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("err = %v, want ErrBadRequest", err)
			}
		})
	}
	if got := up.asked(); len(got) != 0 {
		t.Errorf("the upstream was asked %v", got)
	}
}

// TestClientEscapesSegments: every segment is escaped on its own, so a
// revision's slash stays %2F and a path's '#' or '?' cannot end it early.
func TestClientEscapesSegments(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusTeapot) })
	c := newTestClient(t, up.URL, nil)
	ctx := context.Background()
	c.Repo(ctx, Dataset, "org/d.x", "refs/pr/1")
	f := File{Path: "dir/a b#c?.bin", Size: 1, SHA256: strings.Repeat("0", 64)}
	c.Download(ctx, &Repo{Kind: Dataset, Name: "org/d.x", Commit: commit}, f)
	want := []string{
		"/api/datasets/org/d.x/revision/refs%2Fpr%2F1",
		"/datasets/org/d.x/resolve/" + commit + "/dir/a%20b%23c%3F.bin",
	}
	if got := up.asked(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("asked %q, want %q", got, want)
	}
}

// listenOn starts a server on addr (e.g. 127.0.0.2:0) that counts requests.
func listenOn(t *testing.T, addr string, tls bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "followed")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestRedirectRules: a redirect is followed to the upstream's own scheme
// and host, or to https, and nowhere else.
func TestRedirectRules(t *testing.T) {
	other, otherHits := listenOn(t, "127.0.0.2:0", false)
	otherTLS, otherTLSHits := listenOn(t, "127.0.0.2:0", true)
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("to") {
		case "other":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "own":
			http.Redirect(w, r, up.URL+"/landed", http.StatusFound)
		case "https":
			http.Redirect(w, r, otherTLS.URL+"/x", http.StatusFound)
		case "localhost":
			http.Redirect(w, r, strings.Replace(up.URL, "127.0.0.1", "localhost", 1)+"/landed", http.StatusFound)
		default:
			io.WriteString(w, "landed")
		}
	}))
	t.Cleanup(up.Close)
	c := newTestClient(t, up.URL, nil)
	// Trust the test TLS server's certificate (made for example.com), as a
	// real client trusts a CDN's; nothing else of the transport changes.
	tlsConf := otherTLS.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConf.ServerName = "example.com"
	c.http.Transport.(*http.Transport).TLSClientConfig = tlsConf

	tests := []struct {
		name     string
		to       string
		followed bool
	}{
		{"plain http to another address (127.0.0.2) is not followed", "other", false},
		{"the upstream's own scheme and host is followed", "own", true},
		{"another host name for the same address over http is not followed", "localhost", false},
		{"https elsewhere is followed (the upstream is on loopback itself)", "https", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.get(context.Background(), "test", "/r?to="+tt.to)
			if resp != nil {
				resp.Body.Close()
			}
			if tt.followed && err != nil {
				t.Fatalf("not followed: %v", err)
			}
			if !tt.followed && !errors.Is(err, ErrRedirectRefused) {
				t.Fatalf("err = %v, want ErrRedirectRefused", err)
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the http server on 127.0.0.2 got %d requests", n)
	}
	if n := otherTLSHits.Load(); n != 1 {
		t.Errorf("the https server on 127.0.0.2 got %d requests, want 1", n)
	}
}

// TestUpstreamErrorBodies: an upstream's error answer reaches the log,
// bounded, and neither the error nor the mirror's client.
func TestUpstreamErrorBodies(t *testing.T) {
	const secret = "SECRET-UPSTREAM-DETAIL"
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, secret+strings.Repeat("x", 10*MaxErrorBody))
	})
	var logged bytes.Buffer
	c := newTestClient(t, up.URL, slog.New(slog.NewTextHandler(&logged, nil)))
	_, err := c.Repo(context.Background(), Model, "org/m", "main")
	if !errors.Is(err, ErrUpstream) || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v, want ErrUpstream without the body", err)
	}
	if !strings.Contains(logged.String(), secret) {
		t.Errorf("log without the body's start: %.200s", logged.String())
	}
	for _, line := range strings.Split(logged.String(), "\n") {
		if len(line) > 2*MaxErrorBody {
			t.Errorf("log line of %d bytes, want the body's start within %d: %.200s", len(line), 2*MaxErrorBody, line)
		}
	}

	// The mirror's answer to its client names the kind of failure only.
	s := &server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	s.fail(w, err, "")
	if w.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", w.Code)
	}
	for _, v := range []string{w.Body.String(), w.Header().Get("X-Error-Message")} {
		if strings.Contains(v, secret) || strings.Contains(v, up.URL) {
			t.Errorf("the client was told %q", v)
		}
	}
}

// TestHandlerRefusesBadRefs: the mirror's own API answers a name or
// revision that breaks the rules with 400, before any backend is asked.
func TestHandlerRefusesBadRefs(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, p := range []string{
		"/api/models/org/a%0Ab/revision/main",
		"/api/models/org/tiny/revision/..%2F..%2Fx",
		"/api/models/org/tiny/revision/" + strings.Repeat("r", 200),
		"/org/tiny/resolve/..%2Fx/config.json",
		"/org/ti%01ny/resolve/main/config.json",
	} {
		resp, body := do(t, http.MethodGet, srv.URL+p, nil, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d (%s), want 400", p, resp.StatusCode, body)
		}
	}
}
