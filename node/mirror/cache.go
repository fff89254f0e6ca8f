package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// Mirror housekeeping.
const (
	// saveEvery is how often, at most, a use alone rewrites the cache file,
	// so that a busy mirror does not rewrite it on every request. Adding and
	// removing entries writes it at once.
	saveEvery = time.Minute
	// blocksKey is the cache entry standing for the blocks held unpinned.
	blocksKey = "unpinned-blocks"
)

// cacheKind says what a mirror cache entry holds.
type cacheKind string

// What the mirror keeps for its clients.
const (
	// cachedModel is a revision filled from the upstream or seeded from the
	// swarm on demand; its key is the manifest's CID.
	cachedModel cacheKind = "model"
	// cachedFile is one file a fill kept, of a revision not (yet) complete;
	// its key is the file's root CID.
	cachedFile cacheKind = "file"
	// cachedBlocks stands for the blocks held unpinned: pulled through the
	// gateway or read from peers for a client. Evicting it is a garbage
	// collection. Its key is blocksKey.
	cachedBlocks cacheKind = "blocks"
)

// cacheEntry is one thing the mirror keeps for its clients.
type cacheEntry struct {
	// Used is the unix millisecond of the last use, made unique and
	// increasing: a recency order only, no pin or GC decision depends on
	// the wall clock being right.
	Used int64     `json:"used"`
	Kind cacheKind `json:"kind"`
	// Name, Revision and Commit name the repository revision (of a model,
	// or of the revision a file was filled for), to match mirror.pins.
	Name     string `json:"name,omitempty"`
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
	// Root is a model's directory CID.
	Root string `json:"root,omitempty"`
	// Path is a file's path in its repository.
	Path string `json:"path,omitempty"`
	// Size is about the bytes evicting the entry frees.
	Size uint64 `json:"size,omitempty"`
}

// keyedEntry is a cache entry with its key.
type keyedEntry struct {
	key string
	cacheEntry
}

// mirrorCache records what the mirror keeps for its clients and when each
// was last used. It is written before what it records is pinned, so after
// a crash it may list more than the store holds (evicting that is a no-op),
// never less. Imports, adds and what mirror.pins names are never evicted.
type mirrorCache struct {
	path string
	mu   sync.Mutex
	ents map[string]cacheEntry
	// settling are entries added whose pins are not all made yet: an
	// eviction in between would unpin nothing and lose track of what is
	// pinned next, so they are not evicted until settled.
	settling map[string]int
	// settled is closed, and replaced, whenever entries settle.
	settled chan struct{}
	// latest is the highest stamp given out: stamps only go up, so after
	// the clock is set back a thing used now still counts as used after
	// every other one.
	latest int64
	// saved is when the file was last written; dirty, whether uses were
	// recorded since.
	saved time.Time
	dirty bool
}

// openMirrorCache opens the cache file of the home directory dir
// (home.Dir.MirrorCache).
func openMirrorCache(dir string) (*mirrorCache, error) {
	c := &mirrorCache{path: home.Dir(dir).MirrorCache(), ents: map[string]cacheEntry{}, settling: map[string]int{},
		settled: make(chan struct{})}
	raw, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	if err := json.Unmarshal(raw, &c.ents); err != nil {
		// The first format: manifest CID → unix second of last use.
		var old map[string]int64
		if json.Unmarshal(raw, &old) != nil {
			return nil, fmt.Errorf("mirror cache %s: %w", c.path, err)
		}
		c.ents = map[string]cacheEntry{}
		for k, t := range old {
			c.ents[k] = cacheEntry{Used: t * 1000, Kind: cachedModel}
		}
	}
	for _, e := range c.ents {
		c.latest = max(c.latest, e.Used)
	}
	return c, nil
}

// stampLocked is the next last-use stamp.
func (c *mirrorCache) stampLocked() int64 {
	c.latest = max(time.Now().UnixMilli(), c.latest+1)
	return c.latest
}

// add records e under key as used now and writes the file before it
// returns: callers add an entry before they pin what it describes, and
// call the returned settle once they pinned it (or failed to); until
// then the entry is not evicted.
func (c *mirrorCache) add(key string, e cacheEntry) (settle func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.Used = c.stampLocked()
	return c.addLocked(key, e, nil)
}

// addModel is add for the entry of model m. A model whose files the cache
// holds as single files (a revision filled file by file) was last used
// when the last of them was, not when it is recorded (which happens in the
// background, after clients moved on to other revisions): it takes that
// use. Until settled, neither the model nor those files are evicted; the
// caller drops the files' entries (removeFiles) before it settles.
func (c *mirrorCache) addModel(key string, m *manifest.Manifest) (settle func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := modelEntry(m)
	var files []string
	for _, f := range m.Files {
		if fe, ok := c.ents[f.CID]; ok && fe.Kind == cachedFile {
			e.Used = max(e.Used, fe.Used)
			files = append(files, f.CID)
		}
	}
	if e.Used == 0 {
		e.Used = c.stampLocked()
	}
	return c.addLocked(key, e, files)
}

// addLocked records e under key and writes the file. The entry, and those
// under also, are not evicted until the returned settle is called; c.mu
// is held.
func (c *mirrorCache) addLocked(key string, e cacheEntry, also []string) (settle func(), err error) {
	c.ents[key] = e
	if err := c.saveLocked(); err != nil {
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	held := append([]string{key}, also...)
	for _, k := range held {
		c.settling[k]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, k := range held {
				if c.settling[k]--; c.settling[k] <= 0 {
					delete(c.settling, k)
				}
			}
			close(c.settled)
			c.settled = make(chan struct{})
		})
	}, nil
}

// unsettled reports whether entries are settling, and a channel closed
// when some settle.
func (c *mirrorCache) unsettled() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.settling) > 0, c.settled
}

// touch records a use of the entry under key, if there is one. The file
// is rewritten at most every saveEvery for uses alone: after a crash the
// order may be a little older, which costs nothing but a less exact
// eviction.
func (c *mirrorCache) touch(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ents[key]
	if !ok || e.Used == c.latest {
		return // gone, or the most recent already
	}
	e.Used = c.stampLocked()
	c.ents[key] = e
	c.dirty = true
	if time.Since(c.saved) >= saveEvery {
		c.saveLocked() // best effort: the order is an optimisation
	}
}

// touchBlocks records that blocks were kept unpinned just now.
func (c *mirrorCache) touchBlocks() {
	c.mu.Lock()
	_, ok := c.ents[blocksKey]
	c.mu.Unlock()
	if !ok {
		if settle, err := c.add(blocksKey, cacheEntry{Kind: cachedBlocks}); err == nil {
			settle()
		}
		return
	}
	c.touch(blocksKey)
}

func (c *mirrorCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ents[key]; !ok {
		return
	}
	delete(c.ents, key)
	c.saveLocked()
}

// removeFiles drops the single-file entries of m's files, now part of a
// model entry.
func (c *mirrorCache) removeFiles(m *manifest.Manifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, f := range m.Files {
		if e, ok := c.ents[f.CID]; ok && e.Kind == cachedFile {
			delete(c.ents, f.CID)
			changed = true
		}
	}
	if changed {
		c.saveLocked()
	}
}

// oldestFirst lists the settled entries, least recently used first. The
// unpinned blocks are always listed (unused so far if never recorded):
// blocks a crash or a removed pin left count against the quota too.
func (c *mirrorCache) oldestFirst() []keyedEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]keyedEntry, 0, len(c.ents)+1)
	for k, e := range c.ents {
		if c.settling[k] == 0 {
			out = append(out, keyedEntry{k, e})
		}
	}
	if _, ok := c.ents[blocksKey]; !ok {
		out = append(out, keyedEntry{blocksKey, cacheEntry{Kind: cachedBlocks}})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Used != out[j].Used {
			return out[i].Used < out[j].Used
		}
		return out[i].key < out[j].key
	})
	return out
}

func (c *mirrorCache) saveLocked() error {
	raw, err := json.Marshal(c.ents)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(c.path, raw, 0o600); err != nil {
		return err
	}
	c.saved, c.dirty = time.Now(), false
	return nil
}

// flush writes uses recorded since the last write.
func (c *mirrorCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty {
		c.saveLocked()
	}
}

// modelEntry is the cache entry of m.
func modelEntry(m *manifest.Manifest) cacheEntry {
	var size uint64
	for _, f := range m.Files {
		size += f.Size
	}
	return cacheEntry{Kind: cachedModel, Name: m.Name, Revision: m.Revision, Commit: m.Commit, Root: m.Root, Size: size}
}

// keepModel stores, pins and indexes manifest m, whose blocks are local
// (the caller holds PinLock), as a model the mirror keeps for its clients.
// The cache entry is written first and the manifest pinned before the
// root, so that whatever a crash leaves pinned, an entry leads to it.
func (mr *Mirror) keepModel(ctx context.Context, m *manifest.Manifest, cache *mirrorCache) (cid.Cid, error) {
	root, err := cid.Decode(m.Root)
	if err != nil {
		return cid.Undef, err
	}
	nd, err := mr.models.ManifestFile(ctx, m)
	if err != nil {
		return cid.Undef, err
	}
	mc := nd.Cid()
	settle, err := cache.addModel(mc.String(), m)
	if err != nil {
		return cid.Undef, err
	}
	defer settle()
	if err := mr.store.Pin(ctx, mc, m.Name+"@"+m.Revision+" (manifest)"); err != nil {
		return cid.Undef, fmt.Errorf("pin manifest: %w", err)
	}
	if err := mr.store.Pin(ctx, root, m.Name+"@"+m.Revision); err != nil {
		return cid.Undef, err
	}
	if err := mr.models.Index().Add(mc, m); err != nil {
		return cid.Undef, err
	}
	cache.removeFiles(m)
	return mc, nil
}

// housekeep keeps mirror.pins local and the store under mirror.quota until
// ctx ends.
func (mr *Mirror) housekeep(ctx context.Context) {
	b := mr.hfb
	tick := time.NewTicker(mr.cfg.Interval)
	defer tick.Stop()
	for {
		mr.keepMirrorPins(ctx, b)
		if err := b.quota.enforce(ctx); err != nil && ctx.Err() == nil {
			mr.log.Warn("mirror: quota", "err", err)
		}
		b.cache.flush()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pinnedFillKey marks a context whose fills serve mirror.pins: they are
// bounded by the disk, not by mirror.quota.
type pinnedFillKey struct{}

// keepMirrorPins prefetches and pins every entry of mirror.pins: a CID, or
// a name org/model[@rev] from the swarm or the upstream.
func (mr *Mirror) keepMirrorPins(ctx context.Context, b *hfBackend) {
	ctx = context.WithValue(ctx, pinnedFillKey{}, true)
	for _, ref := range mr.cfg.Pins {
		if ctx.Err() != nil {
			return
		}
		if err := mr.keepMirrorPin(ctx, b, ref); err != nil {
			mr.log.Warn("mirror: could not keep pinned entry (will retry)", "ref", ref, "err", err)
		}
	}
}

func (mr *Mirror) keepMirrorPin(ctx context.Context, b *hfBackend, ref string) error {
	if c, err := cid.Decode(ref); err == nil {
		if ok, _ := mr.store.IsPinned(ctx, c); ok {
			return nil
		}
		unlock := mr.store.Blockstore().PinLock(ctx)
		defer unlock.Unlock(ctx)
		if err := mr.fetch.FetchDAG(ctx, c, 0); err != nil {
			return err
		}
		return mr.store.Pin(ctx, c, "mirror.pins "+ref)
	}
	name, rev, err := models.ParseModelRef(ref)
	if err != nil {
		return err
	}
	if _, ok := mr.models.Index().ByName(name, rev); ok {
		return nil
	}
	repo, err := b.Repo(ctx, hfapi.Model, name, rev)
	if err != nil {
		return err
	}
	for _, f := range repo.Files { // reading every file makes it local
		r, err := b.Open(ctx, repo, f)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return nil
}

// isMirrorPinned reports whether mirror.pins names the revision name@rev
// (with commit commit) or the root CID root.
func (mr *Mirror) isMirrorPinned(name, rev, commit, root string) bool {
	for _, ref := range mr.cfg.Pins {
		if root != "" && ref == root {
			return true
		}
		pn, pr, err := models.ParseModelRef(ref)
		if err == nil && pn == name && (pr == rev || pr == commit) {
			return true
		}
	}
	return false
}

func fileCIDs(m *manifest.Manifest) []string {
	out := make([]string, 0, len(m.Files))
	for _, f := range m.Files {
		out = append(out, f.CID)
	}
	return out
}
