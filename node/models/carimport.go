package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/store/car"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// ImportCAR reads the CAR file req.Path in place, once (a CAR on a stick
// needs no room for a copy), every block checked against its CID before
// it is kept (see car.Import). Only when every root of the CAR is then
// complete are they pinned; a truncated or tampered CAR pins nothing and
// fails naming the bad block, its verified blocks left for a retry (and
// for GC).
//
// The name records among the roots are treated as records from a peer:
// each must verify, and it is kept (served to peers, and used to resolve
// names) unless this node keeps a record for that name it prefers (see
// preferRecord). A record's name is used only once its publisher is
// trusted for it: then its manifest is indexed and the model has its name
// here; a record from an untrusted publisher is kept but names nothing
// until "trust add" of its key (or a fetch with --trust-any).
func (reg *Registry) ImportCAR(ctx context.Context, req api.CARImportRequest, progress api.ProgressFunc) (api.CARImportResult, error) {
	start := time.Now()
	f, size, err := openCAR(req.Path)
	if err != nil {
		return api.CARImportResult{}, err
	}
	defer f.Close()
	unlock := reg.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	res, err := car.Import(ctx, reg.store, f, car.ImportOptions{Progress: func(p car.Progress) {
		if progress != nil {
			progress(api.Progress{Done: uint64(p.Bytes), Total: max(size, uint64(p.Bytes))})
		}
	}})
	if err != nil {
		return api.CARImportResult{}, fmt.Errorf("import %s: %w (nothing pinned)", req.Path, err)
	}
	out := api.CARImportResult{Path: req.Path, Blocks: uint64(res.Blocks), Stored: uint64(res.Stored), Bytes: uint64(res.Bytes)}
	for _, rt := range res.Roots {
		out.Roots = append(out.Roots, api.CARRoot{CID: rt.CID.String(), Kind: string(rt.Kind), Complete: rt.Complete})
	}
	labels := reg.carModels(ctx, res)
	for _, c := range res.ToPin() {
		label, ok := labels[c]
		if !ok {
			label = filepath.Base(req.Path)
		}
		if err := reg.store.Pin(ctx, c, label); err != nil {
			return out, fmt.Errorf("import %s: %w", req.Path, err)
		}
		out.Pinned = append(out.Pinned, c.String())
	}
	if out.Names, err = reg.carNames(ctx, res); err != nil {
		return out, fmt.Errorf("import %s: %w", req.Path, err)
	}
	out.Seconds = time.Since(start).Seconds()
	reg.log.Info("imported CAR", "path", req.Path, "roots", len(out.Pinned), "blocks", res.Blocks, "bytes", res.Bytes)
	return out, nil
}

// openCAR opens the regular file path for reading and returns its size.
func openCAR(path string) (*os.File, uint64, error) {
	if !filepath.IsAbs(path) {
		return nil, 0, fmt.Errorf("import %s: %w: path must be absolute", path, api.ErrBadInput)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("import %s: %w: %v", path, api.ErrBadInput, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%w: not a regular file", api.ErrBadInput)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("import %s: %w", path, err)
	}
	return f, uint64(st.Size()), nil
}

// carModels reads the manifests the CAR's records name and returns pin
// labels for them and their content roots (name@rev, as an import of a
// folder names them).
func (reg *Registry) carModels(ctx context.Context, res *car.Result) map[cid.Cid]string {
	labels := map[cid.Cid]string{}
	for _, rt := range res.Roots {
		if rt.Kind != car.KindManifest {
			continue
		}
		m, err := ReadManifest(ctx, reg.store.LocalDAG(), rt.CID)
		if err != nil {
			continue
		}
		labels[rt.CID] = m.Name + "@" + m.Revision + " (manifest)"
		if root, err := cid.Decode(m.Root); err == nil {
			labels[root] = m.Name + "@" + m.Revision
		}
	}
	for _, rb := range res.Records {
		if rb.Record != nil {
			labels[rb.CID] = rb.Record.Name + "@" + rb.Record.Revision + " (record)"
		}
	}
	return labels
}

// carNames judges each record of the CAR as one from a peer, keeps it
// when it should, and indexes the manifest of each trusted one that the
// CAR brought whole.
func (reg *Registry) carNames(ctx context.Context, res *car.Result) ([]api.CARName, error) {
	pinned := map[cid.Cid]bool{}
	for _, c := range res.ToPin() {
		pinned[c] = true
	}
	var out []api.CARName
	for _, rb := range res.Records {
		n := api.CARName{}
		if rb.Record != nil {
			n = api.CARName{Name: rb.Record.Name, Revision: rb.Record.Revision, Manifest: rb.Record.Manifest, Publisher: rb.Record.Publisher}
		}
		if rb.Err != nil {
			n.Note = "not kept: " + rb.Err.Error()
			out = append(out, n)
			continue
		}
		if err := reg.carName(ctx, rb.Record, pinned, &n); err != nil {
			return out, err
		}
		out = append(out, n)
	}
	return out, nil
}

// carName decides about one valid record.
func (reg *Registry) carName(ctx context.Context, rec *manifest.Record, pinned map[cid.Cid]bool, n *api.CARName) error {
	trusted, err := reg.trustedFor(rec)
	if err != nil {
		return err
	}
	n.Trusted = trusted
	keep, why, err := reg.preferRecord(rec, trusted)
	if err != nil {
		return err
	}
	if keep {
		if err := writeRecord(reg.home, rec); err != nil {
			return err
		}
		n.Kept = true
	} else {
		n.Note = "not kept: " + why
	}
	switch {
	case !trusted:
		n.Note = fmt.Sprintf("publisher %s is not trusted for %s: the name is unused until `allmende trust add %s`", rec.Publisher, rec.Name, rec.Publisher)
	case keep:
		return reg.indexCARManifest(ctx, rec, pinned, n)
	}
	return nil
}

// indexCARManifest indexes the manifest a trusted record names, when the
// CAR brought it and its files whole and it is for the record's name.
func (reg *Registry) indexCARManifest(ctx context.Context, rec *manifest.Record, pinned map[cid.Cid]bool, n *api.CARName) error {
	mc, err := cid.Decode(rec.Manifest)
	if err != nil || !pinned[mc] {
		n.Note = "the CAR does not carry the manifest this record names"
		return nil
	}
	m, err := ReadManifest(ctx, reg.store.LocalDAG(), mc)
	if err != nil {
		n.Note = "the manifest does not read: " + err.Error()
		return nil
	}
	root, err := cid.Decode(m.Root)
	switch {
	case m.Name != rec.Name || (m.Revision != rec.Revision && m.Commit != rec.Revision):
		n.Note = fmt.Sprintf("refused: the record points to a manifest for %s@%s", m.Name, m.Revision)
		return nil
	case err != nil || !pinned[root]:
		n.Note = "the CAR does not carry the model's files"
		return nil
	}
	return reg.index.Add(mc, m)
}

// trustedFor reports whether rec's publisher is trusted for its name,
// binding a trusted key not yet bound to names to the record's org, as
// accepting a record from a peer does.
func (reg *Registry) trustedFor(rec *manifest.Record) (bool, error) {
	keys, err := trust.List(reg.home)
	if err != nil {
		return false, err
	}
	pick := pickRecord([]*manifest.Record{rec}, keys, rec.Name, false)
	if pick.best == nil {
		return false, nil
	}
	if pick.bind {
		names, err := reg.bindTrust(rec.Publisher, rec.Name)
		if err != nil {
			return false, err
		}
		return manifest.MatchName(names, rec.Name), nil
	}
	return true, nil
}

// preferRecord decides whether rec replaces the record this node keeps
// for its name, if any: one it cannot read or that no longer verifies
// always; one from the same publisher when rec's sequence number is
// not lower; one from another publisher only when rec's publisher is trusted
// for the name and the kept one's is not (this node's own key counting
// as trusted), or both are and rec's sequence number is higher, or the
// kept one has expired and is not trusted. So a
// record from a stick never displaces this node's own or a trusted one.
func (reg *Registry) preferRecord(rec *manifest.Record, trusted bool) (bool, string, error) {
	raw, ok := readRecord(reg.home, rec.Name, rec.Revision)
	if !ok {
		return true, "", nil
	}
	old, err := manifest.DecodeRecord(raw, time.Now())
	expired := errors.Is(err, manifest.ErrExpired)
	if err != nil && !expired {
		return true, "", nil
	}
	if old.Publisher == rec.Publisher {
		if rec.Seq >= old.Seq { // the same record again, or a later one
			return true, "", nil
		}
		return false, fmt.Sprintf("this node keeps a record of the same publisher with sequence number %d (this one has %d)", old.Seq, rec.Seq), nil
	}
	oldTrusted, err := reg.trustedOrOwn(old)
	if err != nil {
		return false, "", err
	}
	if trusted && (!oldTrusted || rec.Seq > old.Seq) || expired && !oldTrusted {
		return true, "", nil
	}
	return false, fmt.Sprintf("this node keeps a record of %s by %s", rec.Name+"@"+rec.Revision, old.Publisher), nil
}

// trustedOrOwn reports whether rec's publisher is trusted for its name or
// is this node's own publisher key.
func (reg *Registry) trustedOrOwn(rec *manifest.Record) (bool, error) {
	if _, err := os.Stat(reg.home.PublisherKey()); err == nil {
		if own, err := trust.PublisherKey(string(reg.home)); err == nil && own == rec.Publisher {
			return true, nil
		}
	}
	keys, err := trust.List(reg.home)
	if err != nil {
		return false, err
	}
	return pickRecord([]*manifest.Record{rec}, keys, rec.Name, false).best != nil, nil
}
