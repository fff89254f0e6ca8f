package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// MaxIndexedManifests bounds the manifests one node indexes.
const MaxIndexedManifests = 100_000

// Index maps names and whole-file sha256s to the manifests this node
// holds. It is kept in HOME/models/index.json (home.Dir.ModelIndex) as the
// list of manifest CIDs; the manifests themselves are blocks in the store.
// Every change is written to that file before it takes effect in memory,
// so a failed write changes nothing.
type Index struct {
	mu    sync.RWMutex
	path  string
	cids  []string
	names map[string]cid.Cid // name@rev and name@commit → manifest CID
	// files maps a sha256 to the manifests that hold a file with it: two
	// models may share a file, and forgetting one must leave the other's.
	files map[string]map[cid.Cid]manifest.File
	// changed, if set, is called after a manifest was added or forgotten,
	// without x.mu held.
	changed func()
}

// openIndex loads the index at path and the manifests it names from the
// local DAG. Manifests whose block is gone are skipped.
func openIndex(ctx context.Context, path string, local ipld.NodeGetter) (*Index, error) {
	x := &Index{path: path, names: map[string]cid.Cid{}, files: map[string]map[cid.Cid]manifest.File{}}
	raw, err := os.ReadFile(x.path)
	if errors.Is(err, os.ErrNotExist) {
		return x, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model index: %w", err)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("model index %s: %w", x.path, err)
	}
	for _, s := range list[:min(len(list), MaxIndexedManifests)] {
		c, err := cid.Decode(s)
		if err != nil {
			continue
		}
		m, err := ReadManifest(ctx, local, c)
		if err != nil {
			continue
		}
		x.cids = append(x.cids, c.String())
		x.indexLocked(c, m)
	}
	return x, nil
}

// indexLocked maps m's name, commit and files to c; x.mu is held.
func (x *Index) indexLocked(c cid.Cid, m *manifest.Manifest) {
	x.names[m.Name+"@"+m.Revision] = c
	x.names[m.Name+"@"+m.Commit] = c
	for _, f := range m.Files {
		if x.files[f.SHA256] == nil {
			x.files[f.SHA256] = map[cid.Cid]manifest.File{}
		}
		x.files[f.SHA256][c] = f
	}
}

// saveLocked writes cids as the index file; x.mu is held.
func (x *Index) saveLocked(cids []string) error {
	raw, err := json.Marshal(cids)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(x.path), 0o700); err != nil {
		return fmt.Errorf("model index: %w", err)
	}
	if err := fsutil.WriteFileAtomic(x.path, raw, 0o644); err != nil {
		return fmt.Errorf("model index: %w", err)
	}
	return nil
}

// Add indexes m, stored under c, and persists the index.
func (x *Index) Add(c cid.Cid, m *manifest.Manifest) error {
	defer x.notify()
	x.mu.Lock()
	defer x.mu.Unlock()
	if !slices.Contains(x.cids, c.String()) {
		cids := append(slices.Clone(x.cids), c.String())
		if err := x.saveLocked(cids); err != nil {
			return err
		}
		x.cids = cids
	}
	x.indexLocked(c, m)
	return nil
}

// Forget drops manifest c (whose content is m) from the index and its
// file. Names and files other manifests hold stay: a sha256 that another
// indexed model also has still finds that model's file. On a failed write
// the index stays as it was.
func (x *Index) Forget(c cid.Cid, m *manifest.Manifest) error {
	defer x.notify()
	x.mu.Lock()
	defer x.mu.Unlock()
	cids := slices.DeleteFunc(slices.Clone(x.cids), func(s string) bool { return s == c.String() })
	if err := x.saveLocked(cids); err != nil {
		return err
	}
	x.cids = cids
	for k, v := range x.names {
		if v == c {
			delete(x.names, k)
		}
	}
	for _, f := range m.Files {
		delete(x.files[f.SHA256], c)
		if len(x.files[f.SHA256]) == 0 {
			delete(x.files, f.SHA256)
		}
	}
	return nil
}

// notify calls the changed hook, if any.
func (x *Index) notify() {
	if x.changed != nil {
		x.changed()
	}
}

// ByName returns the manifest CID indexed for name@rev (rev may also be
// the commit id).
func (x *Index) ByName(name, rev string) (cid.Cid, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	c, ok := x.names[name+"@"+rev]
	return c, ok
}

// BySHA256 returns a file with whole-file sha256 sum from an indexed
// manifest (the same whichever holds it: its CID follows from its bytes).
func (x *Index) BySHA256(sum string) (manifest.File, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	holders := x.files[sum]
	keys := make([]cid.Cid, 0, len(holders))
	for c := range holders {
		keys = append(keys, c)
	}
	if len(keys) == 0 {
		return manifest.File{}, false
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].KeyString() < keys[j].KeyString() })
	return holders[keys[0]], true
}

// Revisions lists the manifests indexed under name, any revision.
func (x *Index) Revisions(name string) []cid.Cid {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []cid.Cid
	for k, c := range x.names {
		if strings.HasPrefix(k, name+"@") && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// List returns the CIDs of the indexed manifests.
func (x *Index) List() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.cids)
}

// SHA256KeysOf is the providing hook for routing: the sha256 keys of the
// files of indexed models whose file root is c (usually one). Routing
// announces them with the keys of a pinned root, so that `fetch
// sha256:<hex>` finds this node through the DHT.
func (x *Index) SHA256KeysOf(c cid.Cid) []mh.Multihash {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []mh.Multihash
	for sum, holders := range x.files {
		for _, f := range holders {
			if f.CID == c.String() {
				if k, err := SHA256Key(sum); err == nil {
					keys = append(keys, k)
				}
				break
			}
		}
	}
	return keys
}
