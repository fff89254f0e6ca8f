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
	// mirrorCacheFile, in HOME, lists the models the mirror filled on
	// demand, with when each was last asked for: the ones a quota may evict.
	mirrorCacheFile = "mirror-cache.json"
	// DefaultMirrorInterval is how often the mirror retries mirror.pins and
	// checks the quota.
	DefaultMirrorInterval = time.Minute
	// usedResolution is how coarsely last-use times are recorded, so that a
	// busy mirror does not rewrite the cache file on every request.
	usedResolution = time.Minute
)

// mirrorCache tracks models filled on demand and their last use. Models
// listed in mirror.pins, imported or added by hand are never in it, so a
// quota never evicts them. Last use is a recency order only; no pin or GC
// decision depends on the wall clock being right.
type mirrorCache struct {
	path string
	mu   sync.Mutex
	used map[string]int64 // manifest CID → unix seconds of last use
}

func openMirrorCache(home string) (*mirrorCache, error) {
	c := &mirrorCache{path: filepath.Join(home, mirrorCacheFile), used: map[string]int64{}}
	raw, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	if err := json.Unmarshal(raw, &c.used); err != nil {
		return nil, fmt.Errorf("mirror cache %s: %w", c.path, err)
	}
	return c, nil
}

// touch records a use of manifest mc, adding it if add is set.
func (c *mirrorCache) touch(mc string, add bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.used[mc]
	if !ok && !add {
		return
	}
	// Stamps never go backwards: after the clock is set back, a model
	// used now must still count as used after every other one.
	var others int64
	for k, t := range c.used {
		if k != mc {
			others = max(others, t)
		}
	}
	now := time.Now().Unix()
	if ok && last >= others && now-last < int64(usedResolution/time.Second) {
		return // the most recent already, and recently
	}
	c.used[mc] = max(now, others)
	c.saveLocked()
}

func (c *mirrorCache) remove(mc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.used, mc)
	c.saveLocked()
}

// oldestFirst lists cached manifests, least recently used first.
func (c *mirrorCache) oldestFirst() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.used))
	for k := range c.used {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return c.used[out[i]] < c.used[out[j]] })
	return out
}

func (c *mirrorCache) saveLocked() {
	raw, err := json.Marshal(c.used)
	if err == nil {
		err = store.WriteFileAtomic(c.path, raw, 0o600)
	}
	_ = err // best effort: the cache order is an optimisation
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
		if err := n.enforceQuota(ctx, b.cache); err != nil && ctx.Err() == nil {
			n.log.Warn("mirror: quota", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// keepMirrorPins prefetches and pins every entry of mirror.pins: a CID, or
// a name org/model[@rev] from the swarm or the upstream.
func (n *Node) keepMirrorPins(ctx context.Context, b *hfBackend) {
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

// enforceQuota evicts cached models, least recently used first, until the
// store fits mirror.quota. Models named in mirror.pins are never evicted.
func (n *Node) enforceQuota(ctx context.Context, cache *mirrorCache) error {
	if n.cfg.MirrorQuota <= 0 {
		return nil
	}
	for _, mc := range cache.oldestFirst() {
		used, err := n.store.DiskUsage(ctx)
		if err != nil {
			return err
		}
		if used <= uint64(n.cfg.MirrorQuota) {
			return nil
		}
		if err := n.evict(ctx, mc); err != nil {
			return fmt.Errorf("evict %s: %w", mc, err)
		}
		cache.remove(mc)
	}
	return nil
}

// evict unpins a cached model (files, root, manifest), forgets its name and
// frees its blocks.
func (n *Node) evict(ctx context.Context, mc string) error {
	c, err := cid.Decode(mc)
	if err != nil {
		return err
	}
	m, err := readManifest(ctx, n.store.DAG(), c)
	if err != nil {
		return err
	}
	if n.isMirrorPinned(m) {
		return nil
	}
	for _, s := range append(fileCIDs(m), m.Root, mc) {
		if pc, err := cid.Decode(s); err == nil {
			if err := n.store.Unpin(ctx, pc); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	n.models.forget(c, m)
	res, err := n.store.GC(ctx)
	if err != nil {
		return err
	}
	n.log.Info("mirror: evicted least recently used model", "name", m.Name, "rev", m.Revision, "bytes", res.Freed)
	return nil
}

func (n *Node) isMirrorPinned(m *manifest.Manifest) bool {
	for _, ref := range n.cfg.MirrorPins {
		name, rev, err := ParseModelRef(ref)
		if err == nil && name == m.Name && (rev == m.Revision || rev == m.Commit) {
			return true
		}
		if ref == m.Root {
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
