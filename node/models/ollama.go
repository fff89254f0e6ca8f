package models

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ollama"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// importOllama imports every model of the Ollama store at req.Path as a
// model namespace/model@tag in store/ollama's record layout: the blobs
// read in place (no copy, unless req.Copy) and checked against their
// digests, the manifest file copied (Ollama rewrites it on a pull).
// Models Ollama lists under a name allmende cannot carry are skipped with
// a warning, as are broken entries of the store.
func (reg *Registry) importOllama(ctx context.Context, req api.ImportRequest) (api.ImportResult, error) {
	s, err := ollama.Open(req.Path)
	if err != nil {
		return api.ImportResult{}, api.BadInput(fmt.Errorf("import --ollama: %w", err))
	}
	defer s.Close()
	list, problems := s.List()
	if problems != nil {
		reg.log.Warn("import --ollama: entries of the Ollama store left out", "path", req.Path, "err", problems)
	}
	if len(list) == 0 {
		return api.ImportResult{}, fmt.Errorf("import --ollama %s: %w: no model in this Ollama store", req.Path, api.ErrBadInput)
	}
	unlock := reg.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	var out api.ImportResult
	for _, om := range list {
		res, err := reg.importOllamaModel(ctx, s, om, req)
		if errors.Is(err, ollama.ErrInvalid) {
			reg.log.Warn("import --ollama: model skipped", "name", om.Name.String(), "err", err)
			continue
		}
		if err != nil {
			return api.ImportResult{}, err
		}
		out.Models = append(out.Models, res)
		out.Files += res.Files
		out.Size += res.Size
	}
	if len(out.Models) == 0 {
		return api.ImportResult{}, fmt.Errorf("import --ollama %s: %w: no model allmende can name", req.Path, api.ErrBadInput)
	}
	last := out.Models[len(out.Models)-1]
	out.Manifest, out.Root, out.Kind, out.Name, out.Revision, out.Commit = last.Manifest, last.Root, last.Kind, last.Name, last.Revision, last.Commit
	return out, nil
}

// importOllamaModel imports one model of an Ollama store; the caller holds
// the pin lock.
func (reg *Registry) importOllamaModel(ctx context.Context, s *ollama.Store, om *ollama.Model, req api.ImportRequest) (api.ImportResult, error) {
	name, rev, err := ollama.RecordRef(om.Name.Repository(), om.Name.Tag)
	if err != nil {
		return api.ImportResult{}, err
	}
	mpath, err := s.ManifestPath(om.Name)
	if err != nil {
		return api.ImportResult{}, err
	}
	files := []manifest.FileSource{{Path: ollama.RecordManifest, Real: mpath, SHA256: om.Digest.Encoded(), Copy: true}}
	for _, b := range om.Blobs {
		files = append(files, manifest.FileSource{Path: ollama.RecordBlobPath(b.Digest), Real: b.Path, SHA256: b.Digest.Encoded()})
	}
	m, err := manifest.ImportFiles(ctx, reg.store.LocalDAG(), files, manifest.ImportOptions{Name: name, Revision: rev,
		Source: ollama.SourcePrefix + om.Name.String(), NoCopy: !req.Copy, Verified: reg.markVerified})
	if err != nil {
		return api.ImportResult{}, api.BadInputIf(fmt.Errorf("import --ollama %s: %w", om.Name, err), store.ErrBadInput, manifest.ErrInvalid)
	}
	res, err := reg.keepImport(ctx, m)
	if err != nil {
		return res, err
	}
	reg.log.Info("imported Ollama model", "ollama", om.Name.String(), "name", m.Name+"@"+m.Revision, "cid", res.Manifest, "bytes", res.Size)
	return res, nil
}

// writeOllama writes the OCI model m into the Ollama store req.OllamaStore
// as req.OllamaName: each blob the store lacks fetched to its place there
// (assembled in a partial file, checked against its sha256, then renamed),
// then the manifest, so that Ollama sees the model only once it is whole.
func (reg *Registry) writeOllama(ctx context.Context, m *manifest.Manifest, req api.ModelFetchRequest, progress api.ProgressFunc, received *atomic.Uint64) (uint64, error) {
	n, err := ollama.ParseName(req.OllamaName)
	if err != nil {
		return 0, api.BadInput(err)
	}
	mf, ok := m.Lookup(ollama.RecordManifest)
	if !ollama.IsRecord(m) || !ok {
		return 0, fmt.Errorf("%s@%s: %w: not an Ollama or OCI model", m.Name, m.Revision, api.ErrBadInput)
	}
	data, err := reg.readSmallFile(ctx, mf, received)
	if err != nil {
		return 0, err
	}
	om, err := ollama.ParseManifest(data)
	if err != nil {
		return 0, fmt.Errorf("%s@%s: %w", m.Name, m.Revision, err)
	}
	s, err := ollama.Create(req.OllamaStore)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var done, total uint64
	for _, d := range om.Blobs() {
		total += uint64(d.Size)
	}
	for _, d := range om.Blobs() {
		if err := reg.fetchOllamaBlob(ctx, s, m, d, req, func(p api.Progress) {
			if progress != nil {
				progress(api.Progress{Done: min(done+p.Done, total), Total: total})
			}
		}, received); err != nil {
			return 0, fmt.Errorf("%s@%s: %w", m.Name, m.Revision, err)
		}
		done += uint64(d.Size)
	}
	return total, s.WriteManifest(n, data)
}

// fetchOllamaBlob fetches blob d of m to its place in the Ollama store s,
// unless s holds it, and pins it.
func (reg *Registry) fetchOllamaBlob(ctx context.Context, s *ollama.Store, m *manifest.Manifest, d ocispec.Descriptor, req api.ModelFetchRequest, progress api.ProgressFunc, received *atomic.Uint64) error {
	if ok, err := s.HasBlob(d.Digest, d.Size); err != nil || ok {
		return err
	}
	f, ok := m.Lookup(ollama.RecordBlobPath(d.Digest))
	if !ok || f.SHA256 != d.Digest.Encoded() || f.Size != uint64(d.Size) {
		return fmt.Errorf("%w: blob %s is not in the model as the manifest names it", ErrTampered, d.Digest)
	}
	c, err := cid.Decode(f.CID)
	if err != nil {
		return err
	}
	dest, err := s.BlobPath(d.Digest)
	if err != nil {
		return err
	}
	got, err := reg.fetch.FetchFile(ctx, c, dest, fetch.FileWant{Size: f.Size, SHA256: f.SHA256}, req.Timeout, progress)
	received.Add(got)
	if err != nil {
		return err
	}
	return reg.store.Pin(ctx, c, m.Name+"@"+m.Revision+"/"+f.Path)
}

// readSmallFile reads a small file of a manifest (at most
// ollama.MaxManifestBytes) from the store or peers, and checks it against
// its size and sha256.
func (reg *Registry) readSmallFile(ctx context.Context, f manifest.File, received *atomic.Uint64) ([]byte, error) {
	if f.Size > ollama.MaxManifestBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes", f.Path, ErrTampered, f.Size)
	}
	c, err := cid.Decode(f.CID)
	if err != nil {
		return nil, err
	}
	session := reg.fetch.NewSession(ctx)
	ra, err := ufs.NewReaderAt(ctx, session, c)
	if err == nil && ra.Size() != f.Size {
		err = fmt.Errorf("%w: %d bytes, the manifest says %d", ErrTampered, ra.Size(), f.Size)
	}
	data := make([]byte, f.Size)
	if err == nil {
		if _, err = ra.ReadAt(data, 0); errors.Is(err, io.EOF) {
			err = nil
		}
	}
	received.Add(session.Received())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if digest.SHA256.FromBytes(data).Encoded() != f.SHA256 {
		return nil, fmt.Errorf("%s: %w: sha256 differs", f.Path, fetch.ErrHashMismatch)
	}
	return bytes.Clone(data), nil
}

// ollamaStoreDir checks an Ollama store directory given to fetch.
func ollamaStoreDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("fetch: %w: the Ollama store directory must be absolute", api.ErrBadInput)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("fetch: %w: %s is not a directory", api.ErrBadInput, dir)
	}
	return nil
}
