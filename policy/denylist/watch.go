package denylist

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the lists when their files change, until ctx ends. Without
// a file watcher (none available, or a folder that cannot be watched) it
// still rescans every RescanInterval.
func (b *Blocker) watch(ctx context.Context) error {
	defer b.Close()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if b.watcher != nil {
		events, errs = b.watcher.Events, b.watcher.Errors
	}
	rescan := time.NewTicker(RescanInterval)
	defer rescan.Stop()
	settle := time.NewTimer(ReloadDelay)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if b.relevant(ev.Name) {
				settle.Reset(ReloadDelay)
			}
		case err := <-errs:
			b.log.Warn("denylist watcher", "err", err)
		case <-settle.C:
			b.Reload()
		case <-rescan.C:
			b.Reload()
		}
	}
}

// startWatching watches the folders lists lie in, from Open on, so no
// change after Open is missed. Without a watcher, Run rescans.
func (b *Blocker) startWatching() {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		b.log.Warn("cannot watch denylist folders; rescanning them instead", "every", RescanInterval, "err", err)
		return
	}
	for _, dir := range b.watchedDirs() {
		if err := w.Add(dir); err != nil {
			b.log.Warn("cannot watch a denylist folder; it is rescanned", "path", dir, "every", RescanInterval, "err", err)
		}
	}
	b.watcher = w
}

// Close stops watching the folders. Run closes the Blocker when it
// returns; call Close only for a Blocker that never ran. Answers keep
// coming from the last lists loaded.
func (b *Blocker) Close() error {
	b.closeOnce.Do(func() {
		if b.watcher != nil {
			b.closeErr = b.watcher.Close()
		}
	})
	return b.closeErr
}

// watchedDirs are the folders whose changes may change a list: the
// denylists folder, the cache, each configured folder, and the folder of
// each configured file (editors and atomic writers replace files).
func (b *Blocker) watchedDirs() []string {
	dirs := []string{b.cfg.Dir, b.cfg.CacheDir}
	for _, s := range b.sources {
		switch {
		case s.URL != "":
		case isDir(s.Path):
			dirs = append(dirs, s.Path)
		default:
			dirs = append(dirs, filepath.Dir(s.Path))
		}
	}
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// relevant reports whether a change to name may change a list.
func (b *Blocker) relevant(name string) bool {
	if strings.HasSuffix(name, Ext) {
		return true
	}
	for _, s := range b.sources {
		if s.Path != "" && filepath.Clean(name) == s.Path {
			return true
		}
	}
	return false
}
