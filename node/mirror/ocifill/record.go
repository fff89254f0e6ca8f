package ocifill

import (
	"bytes"
	"context"
	"fmt"

	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ollama"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
)

// complete records every waiting tag whose blobs are all kept as a model
// (see record), and forgets it.
func (b *Backend) complete(ctx context.Context) {
	for _, key := range b.pending.Keys() {
		p, ok := b.pending.Peek(key)
		if !ok {
			continue
		}
		files, ok := b.keptFiles(ctx, p.m)
		if !ok {
			continue
		}
		b.pending.Remove(key)
		if err := b.record(ctx, p, files); err != nil {
			b.log.Warn("registry: could not record a filled tag as a model", "name", p.name, "tag", p.tag, "err", err)
		}
	}
}

// keptFiles lists the model files of an image manifest's blobs, if the
// store holds them all.
func (b *Backend) keptFiles(ctx context.Context, m *oci.Manifest) ([]manifest.File, bool) {
	p, err := oci.ParseManifest(m.MediaType, m.Data)
	if err != nil || p.Config == nil {
		return nil, false
	}
	var files []manifest.File
	for _, d := range p.Blobs() {
		r, err := b.openHeld(ctx, d.Digest)
		if err != nil {
			return nil, false
		}
		r.Close()
		c := b.heldCID(d.Digest.Encoded())
		if !c.Defined() {
			return nil, false
		}
		files = append(files, manifest.File{Path: ollama.RecordBlobPath(d.Digest), Size: uint64(d.Size), SHA256: d.Digest.Encoded(), CID: c.String()})
	}
	return files, true
}

// heldCID is the file root of a blob held, kept or in a model.
func (b *Backend) heldCID(sum string) cid.Cid {
	b.mu.Lock()
	c, ok := b.kept[sum]
	b.mu.Unlock()
	if ok {
		return c
	}
	if f, ok := b.cfg.Models.Index().BySHA256(sum); ok {
		c, _ = cid.Decode(f.CID)
	}
	return c
}

// record makes a tag whose blobs are all kept an allmende model in
// store/ollama's record layout: the OCI manifest and the blobs as files,
// stored, pinned, indexed (so peers find every blob, and the manifest, by
// sha256) and announced. A tag recorded before with the same content is
// left as it is.
func (b *Backend) record(ctx context.Context, p pendingTag, blobs []manifest.File) error {
	unlock := b.cfg.Store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	mf, err := store.BuildFile(ctx, b.cfg.Store.LocalDAG(), bytes.NewReader(p.m.Data))
	if err != nil {
		return err
	}
	files := append([]manifest.File{{Path: ollama.RecordManifest, Size: uint64(len(p.m.Data)),
		SHA256: p.m.Digest().Encoded(), CID: mf.Cid().String()}}, blobs...)
	entries := make([]ufs.Entry, 0, len(files))
	for _, f := range files {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return err
		}
		entries = append(entries, ufs.Entry{Path: f.Path, CID: c})
	}
	root, err := ufs.BuildDirectory(ctx, b.cfg.Store.LocalDAG(), entries)
	if err != nil {
		return err
	}
	m := &manifest.Manifest{Version: manifest.Version, Kind: manifest.KindModel, Name: p.name, Revision: p.tag,
		Source: p.source, Root: root.String(), Files: files}
	if m.Commit, err = m.ComputeCommit(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("record %s:%s: %w", p.name, p.tag, err)
	}
	if c, ok := b.cfg.Models.Index().ByName(p.name, m.Commit); ok {
		b.cfg.Keeper.Touch(c.String())
		return nil
	}
	mc, err := b.cfg.Keeper.KeepModel(ctx, m)
	if err != nil {
		return err
	}
	b.log.Info("registry: tag recorded as a model", "name", p.name, "tag", p.tag, "digest", p.m.Digest().String(), "cid", mc.String())
	b.cfg.Keeper.Announce(ctx, root)
	return nil
}
