package denylist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/ipfs/go-cid"
)

// Ext is the file name extension of a denylist in a folder.
const Ext = ".deny"

// Source is one entry of the denylists config key: a local file or
// folder, or an https URL.
type Source struct {
	// Path is an absolute file or folder path; a folder stands for the
	// *.deny files in it.
	Path string
	// URL is an https URL, fetched and refreshed.
	URL string
}

func (s Source) String() string {
	if s.URL != "" {
		return s.URL
	}
	return s.Path
}

// ParseSource reads one denylists entry: an https:// URL, or a path
// (absolute, or relative to the working directory). Other URL schemes are
// refused: a list that decides what a node refuses must come over TLS.
func ParseSource(s string) (Source, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Source{}, fmt.Errorf("%w: empty denylist source", ErrInvalid)
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		u, err := url.Parse(s)
		if err != nil || !strings.EqualFold(scheme, "https") || u.Host == "" || u.User != nil {
			return Source{}, fmt.Errorf("%w: denylist %q: want an https:// URL (with a host, no user) or a path", ErrInvalid, s)
		}
		return Source{URL: u.String()}, nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Source{}, fmt.Errorf("%w: denylist %q: %v", ErrInvalid, s, err)
	}
	return Source{Path: abs}, nil
}

// Config says which lists a Blocker enforces.
type Config struct {
	// Dir is the folder whose *.deny files are enforced and watched
	// (HOME/denylists); it is created if missing.
	Dir string
	// CacheDir keeps the lists fetched from URLs, so they hold offline
	// and across restarts; created if missing. It must not be Dir.
	CacheDir string
	// Sources are the entries of the denylists config key, in order.
	Sources []string
	// Refresh is how often URL lists are fetched again (DefaultRefresh if
	// 0, at least MinRefresh).
	Refresh time.Duration
	// Client fetches URL lists; nil means a client with FetchTimeout.
	// Tests pass an httptest TLS server's client.
	Client *http.Client
	// MaxListSize bounds one list (MaxListSize if 0).
	MaxListSize int64
	// Log receives what happens to lists (slog.Default() if nil).
	Log *slog.Logger
}

// Blocker enforces a node's denylists: the files in Config.Dir, in name
// order, then the configured sources in order (a later list overrides an
// earlier one, see Set). Open loads what is on disk; Run watches the files
// and fetches the URL lists until its context ends. Its answers always come
// from one consistent snapshot of the lists. Safe for concurrent use.
type Blocker struct {
	cfg     Config
	sources []Source
	log     *slog.Logger
	client  *http.Client
	set     atomic.Pointer[Set]
	// watcher sees changes to the folders from Open on (nil if none).
	watcher   *fsnotify.Watcher
	closeOnce sync.Once
	closeErr  error

	// fetchMu serialises fetches.
	fetchMu sync.Mutex
	// mu serialises reloads and guards what follows.
	mu    sync.Mutex
	files map[string]*fileState
	// status is the state of each list, in the order of the last reload.
	status []ListStatus
	// fetched holds per URL the last fetch's time and error.
	fetched map[string]fetchState
}

// fileState is a list file as last read.
type fileState struct {
	info os.FileInfo
	list *List
	err  error
}

type fetchState struct {
	at  time.Time
	err error
}

// ListStatus describes one list a Blocker knows of.
type ListStatus struct {
	// Source is the file path, or the URL of a fetched list.
	Source string
	// File is where the list lies on disk.
	File string
	// Info is the list's header and counts; empty if it never loaded.
	Info Info
	// Loaded: the list is enforced (if Err is set too, an older version
	// of it is: the newest did not parse).
	Loaded bool
	// Fetched is when a URL list was last fetched or found unchanged.
	Fetched time.Time
	// Err is what went wrong with the list, if anything.
	Err string
}

// Open checks cfg, creates the folders and loads every list on disk
// (fetched lists from CacheDir, so they are enforced before the first
// refresh and without a network). A list that does not load is logged and
// reported by Status; only a bad cfg is an error. It starts watching the
// folders: call Run to act on what the watch sees, or Close.
func Open(cfg Config) (*Blocker, error) {
	if cfg.Dir == "" || cfg.CacheDir == "" {
		return nil, fmt.Errorf("%w: denylists: a folder and a cache folder are required", ErrInvalid)
	}
	if filepath.Clean(cfg.Dir) == filepath.Clean(cfg.CacheDir) {
		return nil, fmt.Errorf("%w: denylists: the cache folder must not be the denylists folder", ErrInvalid)
	}
	if len(cfg.Sources) > MaxLists {
		return nil, fmt.Errorf("%w: %d denylists configured, at most %d", ErrInvalid, len(cfg.Sources), MaxLists)
	}
	switch {
	case cfg.Refresh == 0:
		cfg.Refresh = DefaultRefresh
	case cfg.Refresh < MinRefresh:
		return nil, fmt.Errorf("%w: denylists_refresh %s: at least %s", ErrInvalid, cfg.Refresh, MinRefresh)
	}
	if cfg.MaxListSize <= 0 {
		cfg.MaxListSize = MaxListSize
	}
	b := &Blocker{cfg: cfg, log: cfg.Log, client: cfg.Client, files: map[string]*fileState{}, fetched: map[string]fetchState{}}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("component", "denylist")
	if b.client == nil {
		b.client = &http.Client{Timeout: FetchTimeout}
	}
	for _, s := range cfg.Sources {
		src, err := ParseSource(s)
		if err != nil {
			return nil, err
		}
		b.sources = append(b.sources, src)
	}
	for _, dir := range []string{cfg.Dir, cfg.CacheDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("denylists: %w", err)
		}
	}
	b.set.Store(NewSet())
	b.startWatching()
	b.Reload()
	return b, nil
}

// Set is the lists enforced now, a snapshot that later changes leave as
// it is.
func (b *Blocker) Set() *Set { return b.set.Load() }

// CID is the verdict of the lists enforced now on the block c.
func (b *Blocker) CID(c cid.Cid) Match { return b.Set().CID(c) }

// Path is the verdict on the path subpath below c.
func (b *Blocker) Path(c cid.Cid, subpath string) Match { return b.Set().Path(c, subpath) }

// ContentPath is the verdict on a gateway content path.
func (b *Blocker) ContentPath(p string) Match { return b.Set().ContentPath(p) }

// SHA256 is the verdict on a file with whole-file sha256 sum (hex).
func (b *Blocker) SHA256(sum string) Match { return b.Set().SHA256(sum) }

// Name is the verdict on the model or dataset name org/name.
func (b *Blocker) Name(name string) Match { return b.Set().Name(name) }

// Status describes every list, in the order they are enforced.
func (b *Blocker) Status() []ListStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.status)
}

// candidate is a list file Reload considers, with the name it goes by.
type candidate struct {
	file, source string
	remote       bool
}

// candidates lists the list files in enforcement order, without
// duplicates, at most MaxLists.
func (b *Blocker) candidates() []candidate {
	var out []candidate
	seen := map[string]bool{}
	add := func(c candidate) {
		if !seen[c.file] && len(out) < MaxLists {
			seen[c.file] = true
			out = append(out, c)
		}
	}
	for _, f := range b.folder(b.cfg.Dir) {
		add(candidate{file: f, source: f})
	}
	for _, s := range b.sources {
		switch {
		case s.URL != "":
			add(candidate{file: b.cachePath(s.URL), source: s.URL, remote: true})
		case isDir(s.Path):
			for _, f := range b.folder(s.Path) {
				add(candidate{file: f, source: f})
			}
		default:
			add(candidate{file: s.Path, source: s.Path})
		}
	}
	if len(out) == MaxLists {
		b.log.Warn("more denylists than enforced; the rest are ignored", "max", MaxLists)
	}
	return out
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// folder lists the *.deny files directly in dir, by name.
func (b *Blocker) folder(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			b.log.Warn("cannot read denylist folder", "path", dir, "err", err)
		}
		return nil
	}
	var out []string
	for _, e := range entries { // ReadDir sorts by name
		if strings.HasSuffix(e.Name(), Ext) && !strings.HasPrefix(e.Name(), ".") && !e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// Reload reads again every list file that changed (by size, time or
// identity), drops those removed, and enforces the result. A file that no
// longer parses keeps its last good version enforced: a list being
// rewritten must not open a gap.
func (b *Blocker) Reload() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reloadLocked()
}

func (b *Blocker) reloadLocked() {
	var lists []*List
	var status []ListStatus
	keep := map[string]*fileState{}
	for _, c := range b.candidates() {
		st := b.load(c)
		keep[c.file] = st
		ls := ListStatus{Source: c.source, File: c.file, Loaded: st.list != nil}
		if st.list != nil {
			lists = append(lists, st.list)
			ls.Info = st.list.Info()
		}
		if st.err != nil {
			ls.Err = st.err.Error()
		}
		if f, ok := b.fetched[c.source]; ok && c.remote {
			ls.Fetched = f.at
			if f.err != nil {
				ls.Err = f.err.Error()
			}
		}
		status = append(status, ls)
	}
	b.files, b.status = keep, status
	b.set.Store(NewSet(lists...))
}

// load returns the state of one list file, parsing it again only if it
// changed since it was last read.
func (b *Blocker) load(c candidate) *fileState {
	old := b.files[c.file]
	info, err := os.Stat(c.file)
	switch {
	case errors.Is(err, os.ErrNotExist) && c.remote:
		return &fileState{err: errors.New("not fetched yet")}
	case err != nil:
		if old != nil && old.list != nil {
			b.log.Info("denylist removed", "path", c.source)
		}
		return &fileState{err: err}
	case old != nil && old.info != nil && sameFile(old.info, info):
		return old
	case info.Size() > b.cfg.MaxListSize:
		err = fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, info.Size(), b.cfg.MaxListSize)
	}
	var l *List
	if err == nil {
		l, err = b.parseFile(c)
	}
	if err != nil {
		b.log.Warn("denylist not loaded", "path", c.source, "err", err)
		st := &fileState{info: info, err: err}
		if old != nil && old.list != nil {
			st.list = old.list
			b.log.Warn("keeping the last version of the denylist", "path", c.source)
		}
		return st
	}
	inf := l.Info()
	b.log.Info("denylist loaded", "path", c.source, "name", inf.Name, "rules", inf.Rules, "skipped", inf.Skipped)
	for _, e := range inf.LineErrors {
		b.log.Warn("denylist line skipped", "path", c.source, "line", e.Line, "err", e.Err)
	}
	return &fileState{info: info, list: l}
}

func (b *Blocker) parseFile(c candidate) (*List, error) {
	f, err := os.Open(c.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLimited(c.source, f, b.cfg.MaxListSize)
}

// sameFile reports whether a file is unchanged: the same file, size and
// modification time.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// Run keeps the lists current until ctx ends: it reloads a list file
// ReloadDelay after it changes (watching the folders; every RescanInterval
// in any case), and fetches the URL lists at once and then every Refresh.
// It returns nil when ctx ends.
func (b *Blocker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if b.hasURLs() {
		wg.Go(func() { b.fetchLoop(ctx) })
	}
	return b.watch(ctx)
}

func (b *Blocker) hasURLs() bool {
	return slices.ContainsFunc(b.sources, func(s Source) bool { return s.URL != "" })
}

func (b *Blocker) fetchLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.Refresh(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("denylist refresh failed; the copies on disk stay enforced", "err", err)
			}
			t.Reset(b.cfg.Refresh)
		}
	}
}
