package denylist_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/policy/denylist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a logger for tests that expect warnings.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond for up to 10 s (bounded; the machine is shared).
func eventually(t *testing.T, why string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within 10 s: %s", why)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, cfg denylist.Config) *denylist.Blocker {
	t.Helper()
	home := t.TempDir()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(home, "denylists")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(home, "denylists-fetched")
	}
	if cfg.Log == nil {
		cfg.Log = quiet()
	}
	b, err := denylist.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// run runs b until the test ends.
func run(t *testing.T, b *denylist.Blocker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestBlockerWatchesFolder: lists added, changed, broken and removed while
// the node runs apply without a restart.
func TestBlockerWatchesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "denylists")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "a.deny")
	write(t, a, "name:acme/*\n")
	b := open(t, denylist.Config{Dir: dir})
	if m := b.Name("acme/x"); !m.Blocked() || m.List != a || m.Line != 1 {
		t.Fatalf("loaded at Open: %s", m)
	}
	run(t, b)

	steps := []struct {
		why    string
		change func()
		check  func() bool
	}{
		{"a new list applies", func() { write(t, filepath.Join(dir, "b.deny"), "/ipfs/"+cidBlocked.String()+"\n") },
			func() bool { return b.CID(cidBlocked).Blocked() }},
		{"a rule appended applies", func() { appendTo(t, a, "!name:acme/ok\n") },
			func() bool { return b.Name("acme/ok").Status == denylist.Allowed && b.Name("acme/x").Blocked() }},
		{"a list rewritten in place applies", func() { write(t, a, "sha256:"+fileBlocked+"\n") },
			func() bool { return b.SHA256(fileBlocked).Blocked() && !b.Name("acme/x").Blocked() }},
		{"a list broken keeps its last version", func() { write(t, a, "version: 9\n---\n") },
			func() bool { return statusOf(b, a).Err != "" && b.SHA256(fileBlocked).Blocked() }},
		{"a list renamed into place applies", func() {
			tmp := filepath.Join(dir, ".c.deny.tmp")
			write(t, tmp, "name:other/*\n")
			if err := os.Rename(tmp, filepath.Join(dir, "c.deny")); err != nil {
				t.Fatal(err)
			}
		}, func() bool { return b.Name("other/m").Blocked() }},
		{"a list removed stops applying", func() { os.Remove(filepath.Join(dir, "b.deny")) },
			func() bool { return !b.CID(cidBlocked).Blocked() }},
		{"a file without .deny is not a list", func() { write(t, filepath.Join(dir, "notes.txt"), "name:notes/*\n") },
			func() bool { return !b.Name("notes/x").Blocked() && len(b.Status()) == 2 }},
	}
	for _, s := range steps {
		s.change()
		eventually(t, s.why, s.check)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func statusOf(b *denylist.Blocker, source string) denylist.ListStatus {
	for _, s := range b.Status() {
		if s.Source == source {
			return s
		}
	}
	return denylist.ListStatus{}
}

func TestBlockerPathSources(t *testing.T) {
	other := t.TempDir()
	file := filepath.Join(other, "school.list") // any name for a configured file
	write(t, file, "name:school/*\n")
	folder := filepath.Join(other, "lists")
	os.MkdirAll(folder, 0o700)
	write(t, filepath.Join(folder, "z.deny"), "!name:school/allowed\n")
	b := open(t, denylist.Config{Sources: []string{file, folder}})
	if m := b.Name("school/x"); !m.Blocked() || m.List != file {
		t.Errorf("a configured file: %s", m)
	}
	if m := b.Name("school/allowed"); m.Status != denylist.Allowed {
		t.Errorf("a configured folder, later in order, excepts: %s", m)
	}
	run(t, b)
	write(t, file, "name:school/*\nname:more/*\n")
	eventually(t, "a configured file changed applies", func() bool { return b.Name("more/x").Blocked() })
}

func TestOpenConfig(t *testing.T) {
	home := t.TempDir()
	d, c := filepath.Join(home, "d"), filepath.Join(home, "c")
	tests := []struct {
		why string
		cfg denylist.Config
	}{
		{"no folder", denylist.Config{CacheDir: c}},
		{"the cache is the folder", denylist.Config{Dir: d, CacheDir: d}},
		{"a plain http URL", denylist.Config{Dir: d, CacheDir: c, Sources: []string{"http://lists.example/x.deny"}}},
		{"an ftp URL", denylist.Config{Dir: d, CacheDir: c, Sources: []string{"ftp://lists.example/x.deny"}}},
		{"a refresh under a minute", denylist.Config{Dir: d, CacheDir: c, Refresh: time.Second}},
		{"too many lists", denylist.Config{Dir: d, CacheDir: c, Sources: make([]string, denylist.MaxLists+1)}},
	}
	for _, tt := range tests {
		if _, err := denylist.Open(tt.cfg); !errors.Is(err, denylist.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.why, err)
		}
	}
}

func TestParseSource(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		in   string
		want denylist.Source
		ok   bool
	}{
		{"https://lists.example/badbits.deny", denylist.Source{URL: "https://lists.example/badbits.deny"}, true},
		{"HTTPS://lists.example/x", denylist.Source{URL: "https://lists.example/x"}, true},
		{"/etc/allmende/local.deny", denylist.Source{Path: "/etc/allmende/local.deny"}, true},
		{"lists/local.deny", denylist.Source{Path: filepath.Join(wd, "lists/local.deny")}, true},
		{"http://lists.example/x", denylist.Source{}, false},
		{"https:///nohost", denylist.Source{}, false},
		{"https://user:pw@lists.example/x", denylist.Source{}, false},
		{"  ", denylist.Source{}, false},
	}
	for _, tt := range tests {
		got, err := denylist.ParseSource(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSource(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// listServer serves a denylist over TLS on loopback with an ETag and a
// Last-Modified, answering conditional requests with 304.
type listServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        string
	etag        string
	requests    atomic.Int32
	conditional atomic.Int32
	notModified atomic.Int32
}

func newListServer(t *testing.T, body string) *listServer {
	s := &listServer{}
	s.set(body)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *listServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, fmt.Sprintf(`"%d"`, len(body))
}

func (s *listServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	body, etag := s.body, s.etag
	s.mu.Unlock()
	if r.URL.Path == "/redirect" {
		http.Redirect(w, r, "http://127.0.0.1:1/list.deny", http.StatusFound)
		return
	}
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		s.conditional.Add(1)
	}
	if r.Header.Get("If-None-Match") == etag {
		s.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
	io.WriteString(w, body)
}

func TestBlockerFetches(t *testing.T) {
	srv := newListServer(t, "name:remote/*\n")
	url := srv.URL + "/list.deny"
	home := t.TempDir()
	cfg := denylist.Config{Dir: filepath.Join(home, "denylists"), CacheDir: filepath.Join(home, "fetched"),
		Sources: []string{url}, Client: srv.Client(), MaxListSize: 4 << 10, Log: quiet()}
	b := open(t, cfg)
	if b.Name("remote/x").Blocked() {
		t.Fatal("blocked before the first fetch")
	}
	if st := statusOf(b, url); st.Loaded || st.Err == "" {
		t.Errorf("before the first fetch: %+v", st)
	}
	ctx := context.Background()
	steps := []struct {
		why     string
		change  func()
		wantErr bool
		check   func() bool
	}{
		{"the first fetch applies", func() {}, false,
			func() bool { return b.Name("remote/x").Blocked() && b.Name("remote/x").List == url }},
		{"an unchanged list costs a 304", func() {}, false,
			func() bool { return srv.notModified.Load() == 1 && b.Name("remote/x").Blocked() }},
		{"a changed list applies", func() { srv.set("name:remote/*\n!name:remote/ok\n") }, false,
			func() bool { return b.Name("remote/ok").Status == denylist.Allowed }},
		{"a list over the size bound is refused, the copy stays", func() { srv.set(strings.Repeat("# padding\n", 500)) }, true,
			func() bool { return b.Name("remote/x").Blocked() && b.Name("remote/ok").Status == denylist.Allowed }},
		{"a list that does not parse is refused, the copy stays", func() { srv.set("version: 7\n---\n") }, true,
			func() bool { return b.Name("remote/x").Blocked() }},
		{"the server gone: the copy stays", func() { srv.CloseClientConnections(); srv.Close() }, true,
			func() bool { return b.Name("remote/x").Blocked() && statusOf(b, url).Err != "" }},
	}
	for _, s := range steps {
		s.change()
		err := b.Refresh(ctx)
		if (err != nil) != s.wantErr {
			t.Errorf("%s: Refresh: %v", s.why, err)
		}
		if !s.check() {
			t.Errorf("%s: not so", s.why)
		}
	}
	if srv.conditional.Load() < 4 {
		t.Errorf("%d conditional requests, want one per fetch after the first", srv.conditional.Load())
	}
	// A restart without a network: the copy on disk is enforced at Open.
	offline := cfg
	offline.Client = &http.Client{Transport: failing{}}
	b2, err := denylist.Open(offline)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if m := b2.Name("remote/x"); !m.Blocked() || m.List != url {
		t.Errorf("offline restart: %s", m)
	}
	if err := b2.Refresh(ctx); err == nil || !b2.Name("remote/x").Blocked() {
		t.Errorf("offline refresh: err %v; the copy must stay", err)
	}
}

// failing is a transport with no network.
type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network")
}

func TestBlockerFetchRefusesDowngrade(t *testing.T) {
	srv := newListServer(t, "name:remote/*\n")
	b := open(t, denylist.Config{Sources: []string{srv.URL + "/redirect"}, Client: srv.Client()})
	if err := b.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("a redirect to http: err = %v", err)
	}
}

// TestBlockerRunFetches: Run fetches at once, so a list configured by URL
// applies soon after the daemon starts.
func TestBlockerRunFetches(t *testing.T) {
	srv := newListServer(t, "sha256:"+fileBlocked+"\n")
	b := open(t, denylist.Config{Sources: []string{srv.URL + "/l.deny"}, Client: srv.Client()})
	run(t, b)
	eventually(t, "the URL list applies", func() bool { return b.SHA256(fileBlocked).Blocked() })
}
