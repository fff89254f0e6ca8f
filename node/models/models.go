package models

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/policy/license"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// answerResolve answers a peer's resolve request from what is local.
func (reg *Registry) answerResolve(ctx context.Context, from peer.ID, req *protocol.ResolveRequest) *protocol.ResolveResponse {
	switch {
	case req.SHA256 != "":
		f, ok := reg.index.BySHA256(req.SHA256)
		if !ok || reg.gate.SHA256(req.SHA256, "", policy.SurfaceReseed) != nil {
			return &protocol.ResolveResponse{}
		}
		c, err := cid.Decode(f.CID)
		if err == nil && reg.gate.Blocked(c, policy.SurfaceReseed) {
			return &protocol.ResolveResponse{}
		}
		if has, _ := reg.store.Blockstore().Has(ctx, c); err != nil || !has {
			return &protocol.ResolveResponse{}
		}
		return &protocol.ResolveResponse{CID: f.CID, Size: f.Size}
	case req.Name != "":
		if reg.gate.Name(req.Name, policy.SurfaceReseed) != nil {
			return &protocol.ResolveResponse{}
		}
		if raw, ok := readRecord(reg.home, req.Name, req.Revision); ok {
			return &protocol.ResolveResponse{Records: [][]byte{raw}, Attestations: reg.attestationsFor(raw)}
		}
		return &protocol.ResolveResponse{}
	}
	c, err := cid.Decode(req.CID)
	if err != nil {
		return &protocol.ResolveResponse{Error: "bad cid"}
	}
	if reg.gate.Blocked(c, policy.SurfaceReseed) {
		return &protocol.ResolveResponse{Error: "not available"}
	}
	data, err := readRange(ctx, reg.store.LocalDAG(), c, req.Offset, req.Length)
	if err != nil {
		reg.log.Debug("range request failed", "peer", from.String(), "cid", req.CID, "err", err)
		return &protocol.ResolveResponse{Error: "not available"}
	}
	return &protocol.ResolveResponse{Data: data}
}

// Import imports req.Path as a model: every file read once (chunked and
// hashed together), leaf blocks kept as references to the files in place
// unless req.Copy, the manifest stored as a block, root and manifest
// pinned, and the model indexed so peers can find it by sha256 and name.
func (reg *Registry) Import(ctx context.Context, req api.ImportRequest, progress api.ProgressFunc) (api.ImportResult, error) {
	if !filepath.IsAbs(req.Path) {
		return api.ImportResult{}, fmt.Errorf("import %s: %w: path must be absolute", req.Path, api.ErrBadInput)
	}
	if req.Ollama {
		return reg.importOllama(ctx, req)
	}
	opts, dir, err := importOptions(req)
	if err != nil {
		return api.ImportResult{}, err
	}
	opts.Verified = reg.markVerified
	if opts.License == "" {
		opts.License = cardLicense(dir, reg.log)
	}
	total := followedSize(dir)
	var done uint64
	opts.Progress = func(d int64) {
		done += uint64(d)
		if progress != nil {
			progress(api.Progress{Done: done, Total: total})
		}
	}
	unlock := reg.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	m, err := manifest.Import(ctx, reg.store.LocalDAG(), dir, opts)
	if err != nil {
		return api.ImportResult{}, api.BadInputIf(err, store.ErrBadInput, manifest.ErrInvalid)
	}
	res, err := reg.keepImport(ctx, m)
	if err != nil {
		return res, err
	}
	reg.log.Info("imported", "name", m.Name+"@"+m.Revision, "cid", res.Manifest, "path", req.Path, "bytes", res.Size)
	return res, nil
}

// keepImport stores the manifest of an imported model and pins its root,
// and returns what the import made.
func (reg *Registry) keepImport(ctx context.Context, m *manifest.Manifest) (api.ImportResult, error) {
	mc, err := reg.storeManifest(ctx, m)
	if err != nil {
		return api.ImportResult{}, err
	}
	root, _ := cid.Decode(m.Root)
	if err := reg.store.Pin(ctx, root, m.Name+"@"+m.Revision); err != nil {
		return api.ImportResult{}, fmt.Errorf("import: %w", err)
	}
	var size uint64
	for _, f := range m.Files {
		size += f.Size
	}
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

// cardFile is the model card of a Hugging Face repository.
const cardFile = "README.md"

// cardLicense is the licence the model card in dir declares (its front
// matter's license, license_name), normalised to an SPDX id or expression;
// "" if there is no card or it declares none.
func cardLicense(dir string, log *slog.Logger) string {
	f, err := os.Open(filepath.Join(dir, cardFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	card, err := license.ParseCard(f)
	if err != nil {
		if !errors.Is(err, license.ErrNoFrontMatter) {
			log.Warn("model card not read; the licence stays unknown", "path", f.Name(), "err", err)
		}
		return ""
	}
	return card.ID()
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
			return opts, "", api.BadInput(fmt.Errorf("import: %w", err))
		}
		return opts, req.Path, nil
	case err != nil:
		return opts, "", api.BadInput(fmt.Errorf("import: %w", err))
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
func (reg *Registry) storeManifest(ctx context.Context, m *manifest.Manifest) (cid.Cid, error) {
	nd, err := reg.ManifestFile(ctx, m)
	if err != nil {
		return cid.Undef, err
	}
	if err := reg.store.Pin(ctx, nd.Cid(), m.Name+"@"+m.Revision+" (manifest)"); err != nil {
		return cid.Undef, fmt.Errorf("pin manifest: %w", err)
	}
	if err := reg.index.Add(nd.Cid(), m); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// ManifestFile writes m, encoded, to the store as a file and returns its
// root, unpinned: the caller holds PinLock until it pins it.
func (reg *Registry) ManifestFile(ctx context.Context, m *manifest.Manifest) (ipld.Node, error) {
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if len(data) > manifest.MaxSize {
		return nil, fmt.Errorf("store manifest: %w: %d bytes, at most %d", manifest.ErrInvalid, len(data), manifest.MaxSize)
	}
	nd, err := store.BuildFile(ctx, reg.store.LocalDAG(), bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}
	return nd, nil
}

// ReadManifest reads and decodes the manifest file c through ng, checking
// its size against manifest.MaxSize before reading it.
func ReadManifest(ctx context.Context, ng ipld.NodeGetter, c cid.Cid) (*manifest.Manifest, error) {
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

// markVerified keeps the state of a file that an import has just read and
// hashed (see store.Store.MarkVerified). A file that changed meanwhile is
// simply not marked: it is served through the block store.
func (reg *Registry) markVerified(ctx context.Context, root cid.Cid, before store.FileState) {
	if err := reg.store.MarkVerified(ctx, root, before); err != nil {
		reg.log.Debug("file not marked verified", "cid", root.String(), "path", before.Path, "err", err)
	}
}

// Manifests lists the manifests this node holds, for the web page.
func (reg *Registry) Manifests(ctx context.Context) []*manifest.Manifest {
	var out []*manifest.Manifest
	for _, s := range reg.index.List() {
		c, err := cid.Decode(s)
		if err != nil {
			continue
		}
		if m, err := ReadManifest(ctx, reg.store.LocalDAG(), c); err == nil {
			out = append(out, m)
		}
	}
	return out
}
