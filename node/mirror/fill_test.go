package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	homedir "github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/storetest"
)

// Bounds of the fill tests.
const (
	// fillTestTimeout bounds every exchange with the fake upstream.
	fillTestTimeout = 30 * time.Second
	// fillTestStall is the tests' mirror.stall_timeout.
	fillTestStall = 300 * time.Millisecond
	// fillTestRetryWait is the tests' first backoff before a retry.
	fillTestRetryWait = 10 * time.Millisecond
	// fillCommit is the fake upstream's commit id.
	fillCommit = "0123456789abcdef0123456789abcdef01234567"
)

// fakeHub is an in-memory Hugging Face backend (served by hfapi.Handler
// as the mirror's upstream) that counts the downloads of each file. A
// file's bytes may differ from what its entry declares (a lying hub), and
// a file may stall after its first bytes until the test ends.
type fakeHub struct {
	repo    *hfapi.Repo
	content map[string][]byte // by path
	stall   map[string]bool
	opens   sync.Map // path → *atomic.Int64
	done    chan struct{}
}

func (h *fakeHub) Repo(_ context.Context, kind hfapi.Kind, name, rev string) (*hfapi.Repo, error) {
	if kind != h.repo.Kind || name != h.repo.Name {
		return nil, hfapi.ErrRepoNotFound
	}
	if rev != h.repo.Revision && rev != h.repo.Commit {
		return nil, hfapi.ErrRevisionNotFound
	}
	return h.repo, nil
}

func (h *fakeHub) Open(_ context.Context, _ *hfapi.Repo, f hfapi.File) (io.ReadSeekCloser, error) {
	n, _ := h.opens.LoadOrStore(f.Path, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	data := h.content[f.Path]
	if h.stall[f.Path] {
		return &stallingReader{data: data[:len(data)/2], done: h.done}, nil
	}
	return nopSeekCloser{bytes.NewReader(data)}, nil
}

// downloads is how often the upstream sent path.
func (h *fakeHub) downloads(path string) int64 {
	n, ok := h.opens.Load(path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

type nopSeekCloser struct{ io.ReadSeeker }

func (nopSeekCloser) Close() error { return nil }

// stallingReader sends data (from where it was sought), then nothing
// until done is closed: every resume stalls at once.
type stallingReader struct {
	data []byte
	off  int
	done chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.off < len(s.data) {
		n := copy(p, s.data[s.off:])
		s.off += n
		return n, nil
	}
	<-s.done
	return 0, io.ErrUnexpectedEOF
}

func (s *stallingReader) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekEnd {
		return int64(len(s.data))*2 + off, nil
	}
	s.off = int(off) // ServeContent seeks only from the start
	return off, nil
}

func (s *stallingReader) Close() error { return nil }

// hubFile is a file of the fake hub: served is what it sends, declared
// what its entry says (an LFS file, so the mirror checks its sha256).
type hubFile struct {
	path             string
	served, declared []byte
	stall            bool
}

// newFakeHub serves files as org/tiny@main on 127.0.0.1.
func newFakeHub(t *testing.T, files ...hubFile) (*fakeHub, string) {
	t.Helper()
	h := &fakeHub{content: map[string][]byte{}, stall: map[string]bool{}, done: make(chan struct{})}
	h.repo = &hfapi.Repo{Kind: hfapi.Model, Name: "org/tiny", Revision: "main", Commit: fillCommit}
	for _, f := range files {
		sum := sha256.Sum256(f.declared)
		h.repo.Files = append(h.repo.Files, hfapi.File{Path: f.path, Size: uint64(len(f.declared)), SHA256: hex.EncodeToString(sum[:])})
		h.content[f.path] = f.served
		h.stall[f.path] = f.stall
	}
	srv := httptest.NewServer(hfapi.Handler(h, slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { close(h.done); srv.Close() })
	return h, srv.URL
}

// fakeNode is the node a test mirror runs on.
type fakeNode struct{}

func (fakeNode) ID(context.Context) (api.IDInfo, error)        { return api.IDInfo{ID: "test"}, nil }
func (fakeNode) Peers(context.Context) ([]api.PeerInfo, error) { return nil, nil }
func (fakeNode) List(context.Context) ([]api.PinInfo, error)   { return nil, nil }

// testMirror is a mirror on a real store and model registry, with no
// peers, filling from upstream.
type testMirror struct {
	*Mirror
	home  string
	store *store.Store
}

// newTestMirror starts a mirror on home (a new one if empty) and st (a
// new store if nil).
func newTestMirror(t *testing.T, upstream, home string, st *store.Store) *testMirror {
	t.Helper()
	return newTestMirrorWith(t, upstream, home, st, slog.New(slog.DiscardHandler), nil)
}

// newTestMirrorWith is newTestMirror logging to log, with its Config
// changed by mod (if not nil).
func newTestMirrorWith(t *testing.T, upstream, home string, st *store.Store, log *slog.Logger, mod func(*Config)) *testMirror {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if home == "" {
		home = t.TempDir()
	}
	if st == nil {
		st = storetest.New(t)
	}
	h := p2ptest.Host(t)
	net := storetest.DAGOver(st.Blockstore())
	engine := fetch.New(fetch.Config{Store: st, Net: net, Host: h, Log: log})
	reg, err := models.Open(ctx, models.Config{Home: home, Store: st, Host: h, Fetch: engine, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: home, Upstream: upstream, StallTimeout: fillTestStall, RetryWait: fillTestRetryWait,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Node:  fakeNode{}, Store: st, Models: reg, Fetch: engine, Net: net, Log: log}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testMirror{Mirror: m, home: home, store: st}
}

// read opens path of org/tiny@main through the mirror's hub backend, as a
// client's download does, and reads it whole.
func (m *testMirror) read(ctx context.Context, path string) ([]byte, error) {
	repo, err := m.hfb.Repo(ctx, hfapi.Model, "org/tiny", "main")
	if err != nil {
		return nil, err
	}
	for _, f := range repo.Files {
		if f.Path == path {
			r, err := m.hfb.Open(ctx, repo, f)
			if err != nil {
				return nil, err
			}
			defer r.Close()
			return io.ReadAll(r)
		}
	}
	return nil, hfapi.ErrEntryNotFound
}

// parts lists the unfinished fill files.
func (m *testMirror) parts(t *testing.T) []string {
	t.Helper()
	p, err := filepath.Glob(filepath.Join(homedir.Dir(m.home).Fills(), "*"+homedir.FillPartSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitRecorded waits until org/tiny is recorded as a model, as it is once
// every file of it is kept.
func (m *testMirror) waitRecorded(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, ok := m.models.Index().ByName("org/tiny", fillCommit); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the revision was not recorded as a model once all its files were kept")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNoParts waits until the fills have removed their files: the last
// reader out removes a finished download.
func (m *testMirror) waitNoParts(t *testing.T) {
	t.Helper()
	m.waitNoPartsFor(t, fillTestTimeout)
}

// waitNoPartsFor is waitNoParts, waiting at most d.
func (m *testMirror) waitNoPartsFor(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(m.parts(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fill files left: %v", m.parts(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

// TestFillSharesOneDownload: clients asking for one file at once share one
// upstream download and all get its bytes; once every file of the
// revision is kept, it is a model the registry knows; after a restart the
// kept files are served from the store without asking the upstream.
func TestFillSharesOneDownload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), fillTestTimeout)
	defer cancel()
	weights, config := testBytes(1, 3<<20+5), []byte(`{"model_type":"llama"}`)
	hub, url := newFakeHub(t,
		hubFile{path: "model.safetensors", served: weights, declared: weights},
		hubFile{path: "config.json", served: config, declared: config})
	m := newTestMirror(t, url, "", nil)

	const clients = 4
	var wg sync.WaitGroup
	bodies := make([][]byte, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i], errs[i] = m.read(ctx, "model.safetensors")
		}()
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || !bytes.Equal(bodies[i], weights) {
			t.Fatalf("client %d: %d bytes, %v", i, len(bodies[i]), errs[i])
		}
	}
	if n := hub.downloads("model.safetensors"); n != 1 {
		t.Errorf("%d clients at once made %d upstream downloads, want 1", clients, n)
	}
	if got, err := m.read(ctx, "config.json"); err != nil || !bytes.Equal(got, config) {
		t.Fatalf("config.json: %q, %v", got, err)
	}
	m.waitNoParts(t)
	m.waitRecorded(t, fillTestTimeout)

	again := newTestMirror(t, url, m.home, m.store)
	if got, err := again.read(ctx, "model.safetensors"); err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("after a restart: %d bytes, %v", len(got), err)
	}
	if n := hub.downloads("model.safetensors"); n != 1 {
		t.Errorf("after a restart the kept file was downloaded again (%d downloads)", n)
	}
}

// TestFillRefusesWrongBytes: a file whose bytes do not match the sha256
// its upstream declared is never served whole and never kept; a fill that
// stalls fails with ErrUpstreamTimeout. Neither leaves a file behind.
func TestFillRefusesWrongBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), fillTestTimeout)
	defer cancel()
	good := testBytes(2, 2<<20)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff
	_, url := newFakeHub(t,
		hubFile{path: "lying.bin", served: bad, declared: good},
		hubFile{path: "stalling.bin", served: good, declared: good, stall: true})
	m := newTestMirror(t, url, "", nil)
	for _, tt := range []struct {
		path string
		want error
	}{
		{"lying.bin", hfapi.ErrMismatch},
		{"stalling.bin", hfapi.ErrUpstreamTimeout},
	} {
		got, err := m.read(ctx, tt.path)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %d bytes, err %v; want %v", tt.path, len(got), err, tt.want)
		}
		if len(got) >= len(good) {
			t.Errorf("%s: %d bytes served, the whole file", tt.path, len(got))
		}
	}
	m.waitNoParts(t)
	pins, err := m.store.Pins(ctx)
	if err != nil || len(pins) != 0 {
		t.Errorf("pins after failed fills: %v, %v", pins, err)
	}
}

// TestFillClearsUnfinishedFiles: a fill file a killed daemon left is
// removed when the mirror starts, before any client can ask.
func TestFillClearsUnfinishedFiles(t *testing.T) {
	_, url := newFakeHub(t)
	home := t.TempDir()
	fills := homedir.Dir(home).Fills()
	if err := os.MkdirAll(fills, 0o700); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(fills, "abc.123"+homedir.FillPartSuffix)
	if err := os.WriteFile(left, []byte("cut short"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newTestMirror(t, url, home, nil)
	if p := m.parts(t); len(p) != 0 {
		t.Errorf("unfinished fills left after start: %v", p)
	}
}

// TestMirrorCacheOrder: entries come out least recently used first, a use
// moves an entry to the end, entries being settled are not offered for
// eviction, the unpinned blocks are always offered, and a model's entry
// replaces the entries of its files.
func TestMirrorCacheOrder(t *testing.T) {
	c, err := openMirrorCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		var out []string
		for _, e := range c.oldestFirst() {
			out = append(out, e.key)
		}
		return out
	}
	var settles []func()
	for _, k := range []string{"a", "b", "c"} {
		settle, err := c.add(k, cacheEntry{Kind: cachedFile, Path: k})
		if err != nil {
			t.Fatal(err)
		}
		settles = append(settles, settle)
	}
	if got := keys(); len(got) != 1 || got[0] != blocksKey {
		t.Errorf("with every entry unsettled: %v, want only the unpinned blocks", got)
	}
	for _, settle := range settles {
		settle()
	}
	c.touch("a")
	c.touchBlocks()
	for _, tt := range []struct {
		what string
		want []string
	}{
		{"after using a and keeping blocks", []string{"b", "c", "a", blocksKey}},
	} {
		if got := keys(); !equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.what, got, tt.want)
		}
	}
	// The model of files b and c, recorded now, was last used when c was:
	// before a, and so evicted before it.
	m := &manifest.Manifest{Files: []manifest.File{{CID: "b"}, {CID: "c"}}}
	settle, err := c.addModel("model", m)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(); !equal(got, []string{"a", blocksKey}) {
		t.Errorf("while the model is being recorded: %v, want neither it nor its files offered", got)
	}
	settle()
	c.removeFiles(m)
	if got := keys(); !equal(got, []string{"model", "a", blocksKey}) {
		t.Errorf("after the files became a model: %v, want it where c was", got)
	}
	c.remove("model")
	c.remove("a")
	if got := keys(); !equal(got, []string{blocksKey}) {
		t.Errorf("after the model and a were evicted: %v", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
