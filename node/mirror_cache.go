package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/allmende/allmende/node/hfapi"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// Mirror housekeeping.
const (
	// mirrorCacheFile, in HOME, lists what the mirror keeps on behalf of
	// its clients, with when each was last asked for: what a quota may
	// evict.
	mirrorCacheFile = "mirror-cache.json"
	// DefaultMirrorInterval is how often the mirror retries mirror.pins and
	// checks the quota.
	DefaultMirrorInterval = time.Minute
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
	// latest is the highest stamp given out: stamps only go up, so after
	// the clock is set back a thing used now still counts as used after
	// every other one.
	latest int64
	// saved is when the file was last written; dirty, whether uses were
	// recorded since.
	saved time.Time
	dirty bool
}

func openMirrorCache(home string) (*mirrorCache, error) {
	c := &mirrorCache{path: filepath.Join(home, mirrorCacheFile), ents: map[string]cacheEntry{}, settling: map[string]int{}}
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
	if e.Used == 0 {
		e.Used = c.stampLocked()
	}
	c.ents[key] = e
	if err := c.saveLocked(); err != nil {
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	c.settling[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.settling[key]--; c.settling[key] <= 0 {
				delete(c.settling, key)
			}
		})
	}, nil
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

// lastFileUse is the last use of m's single-file entries, or 0 if it has
// none: a revision completed from files asked for earlier is as recent as
// its latest request, not as its completion (which may come after other
// requests).
func (c *mirrorCache) lastFileUse(m *manifest.Manifest) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last int64
	for _, f := range m.Files {
		if e, ok := c.ents[f.CID]; ok && e.Kind == cachedFile {
			last = max(last, e.Used)
		}
	}
	return last
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
	if err := store.WriteFileAtomic(c.path, raw, 0o600); err != nil {
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
func (n *Node) keepModel(ctx context.Context, m *manifest.Manifest, cache *mirrorCache) (cid.Cid, error) {
	root, err := cid.Decode(m.Root)
	if err != nil {
		return cid.Undef, err
	}
	nd, err := n.manifestFile(ctx, m)
	if err != nil {
		return cid.Undef, err
	}
	mc := nd.Cid()
	entry := modelEntry(m)
	entry.Used = cache.lastFileUse(m)
	settle, err := cache.add(mc.String(), entry)
	if err != nil {
		return cid.Undef, err
	}
	defer settle()
	if err := n.store.Pin(ctx, mc, m.Name+"@"+m.Revision+" (manifest)"); err != nil {
		return cid.Undef, fmt.Errorf("pin manifest: %w", err)
	}
	if err := n.store.Pin(ctx, root, m.Name+"@"+m.Revision); err != nil {
		return cid.Undef, err
	}
	if err := n.models.add(mc, m); err != nil {
		return cid.Undef, err
	}
	cache.removeFiles(m)
	return mc, nil
}

// housekeep keeps mirror.pins local and the store under mirror.quota until
// ctx ends.
func (n *Node) housekeep(ctx context.Context, b *hfBackend) {
	interval := n.cfg.MirrorInterval
	if interval <= 0 {
		interval = DefaultMirrorInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		n.keepMirrorPins(ctx, b)
		if err := b.quota.enforce(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("mirror: quota", "err", err)
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
func (n *Node) keepMirrorPins(ctx context.Context, b *hfBackend) {
	ctx = context.WithValue(ctx, pinnedFillKey{}, true)
	for _, ref := range n.cfg.MirrorPins {
		if ctx.Err() != nil {
			return
		}
		if err := n.keepMirrorPin(ctx, b, ref); err != nil {
			n.log.Warn("mirror: could not keep pinned entry (will retry)", "ref", ref, "err", err)
		}
	}
}

func (n *Node) keepMirrorPin(ctx context.Context, b *hfBackend, ref string) error {
	if c, err := cid.Decode(ref); err == nil {
		if ok, _ := n.store.IsPinned(ctx, c); ok {
			return nil
		}
		unlock := n.store.Blockstore().PinLock(ctx)
		defer unlock.Unlock(ctx)
		if err := n.fetchDAG(ctx, c, n.cfg.FetchTimeout, nil); err != nil {
			return err
		}
		return n.store.Pin(ctx, c, "mirror.pins "+ref)
	}
	name, rev, err := ParseModelRef(ref)
	if err != nil {
		return err
	}
	if _, ok := n.models.byName(name, rev); ok {
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
func (n *Node) isMirrorPinned(name, rev, commit, root string) bool {
	for _, ref := range n.cfg.MirrorPins {
		if root != "" && ref == root {
			return true
		}
		pn, pr, err := ParseModelRef(ref)
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

// forget drops manifest c from the index and its file.
func (x *modelIndex) forget(c cid.Cid, m *manifest.Manifest) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, v := range x.names {
		if v == c {
			delete(x.names, k)
		}
	}
	for _, f := range m.Files {
		delete(x.files, f.SHA256)
	}
	kept := x.cids[:0]
	for _, s := range x.cids {
		if s != c.String() {
			kept = append(kept, s)
		}
	}
	x.cids = kept
	if raw, err := json.Marshal(x.cids); err == nil {
		store.WriteFileAtomic(x.path, raw, 0o644)
	}
}
