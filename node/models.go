package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// modelIndexFile lists, in HOME, the manifests this node holds.
const modelIndexFile = "models/index.json"

// MaxIndexedManifests bounds the manifests one node indexes.
const MaxIndexedManifests = 100_000

// modelIndex maps names and whole-file sha256s to what this node holds.
type modelIndex struct {
	mu    sync.RWMutex
	path  string
	cids  []string
	names map[string]cid.Cid       // name@rev → manifest CID
	files map[string]manifest.File // sha256 → file
}

// openModelIndex loads HOME/models/index.json and the manifests it names
// from the local block store. Manifests whose block is gone are skipped.
func openModelIndex(ctx context.Context, home string, dag ipld.NodeGetter) (*modelIndex, error) {
	x := &modelIndex{path: filepath.Join(home, modelIndexFile), names: map[string]cid.Cid{}, files: map[string]manifest.File{}}
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
		m, err := readManifest(ctx, dag, c)
		if err != nil {
			continue
		}
		x.cids = append(x.cids, c.String())
		x.index(c, m)
	}
	return x, nil
}

// index maps m's name, commit and files to c (the caller holds mu and
// records c in cids).
func (x *modelIndex) index(c cid.Cid, m *manifest.Manifest) {
	x.names[m.Name+"@"+m.Revision] = c
	x.names[m.Name+"@"+m.Commit] = c
	for _, f := range m.Files {
		x.files[f.SHA256] = f
	}
}

// add indexes m (stored under c) and persists the index.
func (x *modelIndex) add(c cid.Cid, m *manifest.Manifest) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.index(c, m)
	if slices.Contains(x.cids, c.String()) {
		return nil
	}
	x.cids = append(x.cids, c.String())
	raw, err := json.Marshal(x.cids)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(x.path), 0o700); err != nil {
		return fmt.Errorf("model index: %w", err)
	}
	return store.WriteFileAtomic(x.path, raw, 0o644)
}

func (x *modelIndex) byName(name, rev string) (cid.Cid, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	c, ok := x.names[name+"@"+rev]
	return c, ok
}

func (x *modelIndex) bySHA256(sum string) (manifest.File, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	f, ok := x.files[sum]
	return f, ok
}

// startModels loads the model index and answers the resolve protocol.
func (n *Node) startModels(ctx context.Context) error {
	x, err := openModelIndex(ctx, n.cfg.Home, n.store.LocalDAG())
	if err != nil {
		return err
	}
	n.models = x
	protocol.ServeResolve(n.host, n.log, n.answerResolve)
	return nil
}

// answerResolve answers a peer's resolve request from what is local.
func (n *Node) answerResolve(ctx context.Context, from peer.ID, req *protocol.ResolveRequest) *protocol.ResolveResponse {
	switch {
	case req.SHA256 != "":
		f, ok := n.models.bySHA256(req.SHA256)
		if !ok {
			return &protocol.ResolveResponse{}
		}
		c, err := cid.Decode(f.CID)
		if has, _ := n.store.Blockstore().Has(ctx, c); err != nil || !has {
			return &protocol.ResolveResponse{}
		}
		return &protocol.ResolveResponse{CID: f.CID, Size: f.Size}
	case req.Name != "":
		if raw, ok := readRecord(n.cfg.Home, req.Name, req.Revision); ok {
			return &protocol.ResolveResponse{Records: [][]byte{raw}}
		}
		return &protocol.ResolveResponse{}
	}
	c, err := cid.Decode(req.CID)
	if err != nil {
		return &protocol.ResolveResponse{Error: "bad cid"}
	}
	data, err := readRange(ctx, n.store.LocalDAG(), c, req.Offset, req.Length)
	if err != nil {
		n.log.Debug("range request failed", "peer", from.String(), "cid", req.CID, "err", err)
		return &protocol.ResolveResponse{Error: "not available"}
	}
	return &protocol.ResolveResponse{Data: data}
}

// Import imports req.Path as a model: every file read once (chunked and
// hashed together), leaf blocks kept as references to the files in place
// unless req.Copy, the manifest stored as a block, root and manifest
// pinned, and the model indexed so peers can find it by sha256 and name.
func (n *Node) importModel(ctx context.Context, req api.ImportRequest, progress api.ProgressFunc) (api.ImportResult, error) {
	if !filepath.IsAbs(req.Path) {
		return api.ImportResult{}, fmt.Errorf("import %s: %w: path must be absolute", req.Path, api.ErrBadInput)
	}
	opts, dir, err := importOptions(req)
	if err != nil {
		return api.ImportResult{}, err
	}
	opts.Verified = n.markVerified
	total := followedSize(dir)
	var done uint64
	opts.Progress = func(d int64) {
		done += uint64(d)
		if progress != nil {
			progress(api.Progress{Done: done, Total: total})
		}
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	m, err := manifest.Import(ctx, n.store.LocalDAG(), dir, opts)
	if err != nil {
		return api.ImportResult{}, badInputIf(err, store.ErrBadInput, manifest.ErrInvalid)
	}
	mc, err := n.storeManifest(ctx, m)
	if err != nil {
		return api.ImportResult{}, err
	}
	root, _ := cid.Decode(m.Root)
	if err := n.store.Pin(ctx, root, m.Name+"@"+m.Revision); err != nil {
		return api.ImportResult{}, fmt.Errorf("import: %w", err)
	}
	var size uint64
	for _, f := range m.Files {
		size += f.Size
	}
	n.log.Info("imported", "name", m.Name+"@"+m.Revision, "cid", mc.String(), "path", req.Path, "bytes", size)
	return api.ImportResult{Manifest: mc.String(), Root: m.Root, Kind: m.Kind, Name: m.Name, Revision: m.Revision,
		Commit: m.Commit, Files: len(m.Files), Size: size}, nil
}

// followedSize sums the sizes of the files below dir, following symlinks
// (a Hugging Face snapshot is all symlinks); it is only for progress.
func followedSize(dir string) uint64 {
	var total uint64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				total += uint64(st.Size())
			}
		}
		return nil
	})
	return total
}

// importOptions recognises a Hugging Face cache repository and fills in
// its name, commit and blob names; a plain folder needs a name.
func importOptions(req api.ImportRequest) (manifest.ImportOptions, string, error) {
	opts := manifest.ImportOptions{Kind: req.Kind, Name: req.Name, Revision: req.Revision, License: req.License,
		Source: req.Source, Force: req.Force, NoCopy: !req.Copy}
	snap, err := hfcache.Open(req.Path, req.Revision)
	switch {
	case errors.Is(err, hfcache.ErrNotCache):
		if req.Name == "" {
			return opts, "", fmt.Errorf("import %s: %w: --name org/model is required for a plain folder", req.Path, api.ErrBadInput)
		}
		if err := manifest.ValidName(req.Name); err != nil {
			return opts, "", fmt.Errorf("import: %w: %w", api.ErrBadInput, err)
		}
		return opts, req.Path, nil
	case err != nil:
		return opts, "", fmt.Errorf("import: %w: %w", api.ErrBadInput, err)
	}
	if opts.Name == "" {
		opts.Name = snap.Name
	}
	if opts.Kind == "" {
		opts.Kind = snap.Kind
	}
	if opts.Source == "" {
		opts.Source = "huggingface:" + snap.Name
	}
	opts.Revision, opts.Commit, opts.Boundary, opts.ETag = snap.Revision, snap.Commit, snap.RepoDir, snap.ETag
	return opts, snap.Dir, nil
}

// storeManifest stores m's canonical encoding as a UnixFS file (one raw
// block, the CID of m.Block(), up to 1 MiB), pins it and indexes it.
func (n *Node) storeManifest(ctx context.Context, m *manifest.Manifest) (cid.Cid, error) {
	nd, err := n.manifestFile(ctx, m)
	if err != nil {
		return cid.Undef, err
	}
	if err := n.store.Pin(ctx, nd.Cid(), m.Name+"@"+m.Revision+" (manifest)"); err != nil {
		return cid.Undef, fmt.Errorf("pin manifest: %w", err)
	}
	if err := n.models.add(nd.Cid(), m); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// manifestFile writes m, encoded, to the store as a file and returns its
// root, unpinned: the caller holds PinLock until it pins it.
func (n *Node) manifestFile(ctx context.Context, m *manifest.Manifest) (ipld.Node, error) {
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if len(data) > manifest.MaxSize {
		return nil, fmt.Errorf("store manifest: %w: %d bytes, at most %d", manifest.ErrInvalid, len(data), manifest.MaxSize)
	}
	nd, err := store.BuildFile(ctx, n.store.LocalDAG(), bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}
	return nd, nil
}

// readManifest reads and decodes the manifest file c through ng, checking
// its size against manifest.MaxSize before reading it.
func readManifest(ctx context.Context, ng ipld.NodeGetter, c cid.Cid) (*manifest.Manifest, error) {
	ra, err := ufs.NewReaderAt(ctx, ng, c)
	if err != nil {
		return nil, err
	}
	if ra.Size() > manifest.MaxSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes, at most %d", manifest.ErrInvalid, ra.Size(), manifest.MaxSize)
	}
	data := make([]byte, ra.Size())
	if _, err := ra.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return manifest.Decode(data)
}

// badInputIf marks err as bad input (for the exit status and the API)
// if it is one of kinds, without changing its message.
func badInputIf(err error, kinds ...error) error {
	for _, k := range kinds {
		if errors.Is(err, k) && !errors.Is(err, api.ErrBadInput) {
			return badInput{err}
		}
	}
	return err
}

// badInput is an error that also counts as ErrBadInput.
type badInput struct{ error }

func (b badInput) Is(target error) bool { return target == api.ErrBadInput }
func (b badInput) Unwrap() error        { return b.error }
