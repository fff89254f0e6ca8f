package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/car"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// carPlan is what an export writes: the roots, and for a model its parts.
type carPlan struct {
	roots []cid.Cid
	// model is set for a model with a signed record (car.ExportModel).
	model *car.Model
	// total is the DAGs' size, for progress and the room check.
	total uint64
	res   api.ExportResult
}

// ExportCAR writes a CARv1 of req.Ref, which this node must hold whole (it
// asks no peer): a CID's DAG; a sha256's file; a model's files, manifest
// and the signed name record this node keeps for it (published here or
// fetched by a trusted name), so that the node that imports it can check
// the name against its own trust list. A model without a record goes
// without one (its files and manifest). The CAR is written beside req.Out
// (store.PartialPath), synced and renamed: req.Out appears whole or not at
// all.
func (reg *Registry) ExportCAR(ctx context.Context, req api.ExportRequest, progress api.ProgressFunc) (api.ExportResult, error) {
	start := time.Now()
	if err := checkCAROut(req.Out); err != nil {
		return api.ExportResult{}, fmt.Errorf("export %s: %w", req.Ref, err)
	}
	plan, err := reg.planExport(ctx, req.Ref)
	if err != nil {
		return api.ExportResult{}, err
	}
	if err := fsutil.CheckRoom(filepath.Dir(req.Out), plan.total); err != nil {
		return api.ExportResult{}, fmt.Errorf("export %s: %w", req.Ref, err)
	}
	opts := car.ExportOptions{Progress: func(p car.Progress) {
		if progress != nil {
			progress(api.Progress{Done: uint64(p.Bytes), Total: max(plan.total, uint64(p.Bytes))})
		}
	}}
	var stats car.Stats
	err = store.WriteNew(req.Out, func(w io.Writer) (err error) {
		stats, err = reg.writeCAR(ctx, w, plan, opts)
		return err
	})
	if err != nil {
		return api.ExportResult{}, api.BadInputIf(fmt.Errorf("writing %s (nothing left there): %w", req.Out, err), store.ErrExists)
	}
	res := plan.res
	res.Out, res.Bytes, res.Blocks, res.Seconds = req.Out, uint64(stats.Bytes), uint64(stats.Blocks), time.Since(start).Seconds()
	for _, r := range stats.Roots {
		res.Roots = append(res.Roots, r.String())
	}
	reg.log.Info("exported CAR", "ref", req.Ref, "path", req.Out, "bytes", stats.Bytes)
	return res, nil
}

// writeCAR writes plan's CAR to w.
func (reg *Registry) writeCAR(ctx context.Context, w io.Writer, plan *carPlan, opts car.ExportOptions) (car.Stats, error) {
	if plan.model != nil {
		return car.ExportModel(ctx, reg.store.Serving(), w, *plan.model, opts)
	}
	return car.Export(ctx, reg.store.Serving(), w, plan.roots, opts)
}

// OpenCAR resolves ref (a CID, sha256:<hex> or org/name[@revision]) among
// what this node holds, as ExportCAR does, and returns what the CAR will
// be (Roots, Out and the counts left empty) and a function that writes it
// to w. The mirror serves a model's CAR through it.
func (reg *Registry) OpenCAR(ctx context.Context, ref string) (api.ExportResult, func(io.Writer) error, error) {
	plan, err := reg.planExport(ctx, ref)
	if err != nil {
		return api.ExportResult{}, nil, err
	}
	return plan.res, func(w io.Writer) error {
		_, err := reg.writeCAR(ctx, w, plan, car.ExportOptions{})
		return err
	}, nil
}

// planExport resolves ref among what this node holds.
func (reg *Registry) planExport(ctx context.Context, ref string) (*carPlan, error) {
	switch {
	case strings.HasPrefix(ref, api.SHA256Prefix):
		sum, err := ParseSHA256Ref(ref)
		if err != nil {
			return nil, err
		}
		f, ok := reg.index.BySHA256(sum)
		if !ok {
			return nil, fmt.Errorf("export %s: %w: no model this node holds has a file with this sha256", ref, api.ErrNotFound)
		}
		return reg.planCIDs(ctx, ref, f.CID)
	case strings.Contains(ref, "/") && !strings.HasPrefix(ref, "/ipfs/"):
		return reg.planModel(ctx, ref)
	}
	c, err := api.ParseCID(ref)
	if err != nil {
		return nil, err
	}
	return reg.planCIDs(ctx, ref, c.String())
}

func (reg *Registry) planCIDs(ctx context.Context, ref string, cids ...string) (*carPlan, error) {
	plan := &carPlan{}
	for _, s := range cids {
		c, err := cid.Decode(s)
		if err != nil {
			return nil, api.BadInput(fmt.Errorf("export %s: %w", ref, err))
		}
		size, err := reg.heldSize(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", ref, err)
		}
		plan.roots, plan.total = append(plan.roots, c), plan.total+size
	}
	return plan, nil
}

// heldSize is the size of the DAG below c as its root block says; the
// root must be in the store.
func (reg *Registry) heldSize(ctx context.Context, c cid.Cid) (uint64, error) {
	nd, err := reg.store.LocalDAG().Get(ctx, c)
	if ipld.IsNotFound(err) {
		return 0, fmt.Errorf("%w: %s is not held here; fetch it first", api.ErrNotFound, c)
	}
	if err != nil {
		return 0, err
	}
	return nd.Size()
}

// planModel exports name@rev: with the record this node keeps for it,
// whose manifest it must hold; without one, the manifest indexed here.
func (reg *Registry) planModel(ctx context.Context, ref string) (*carPlan, error) {
	name, rev, err := ParseModelRef(ref)
	if err != nil {
		return nil, err
	}
	var rec *manifest.Record
	var raw []byte
	mc, ok := reg.index.ByName(name, rev)
	if r, found := readRecord(reg.home, name, rev); found {
		rec, err = manifest.DecodeRecord(r, time.Now())
		if err != nil && !errors.Is(err, manifest.ErrExpired) {
			return nil, fmt.Errorf("export %s: the name record kept here does not verify: %w", ref, err)
		}
		if mc, err = cid.Decode(rec.Manifest); err != nil {
			return nil, fmt.Errorf("export %s: %w", ref, err)
		}
		raw, ok = r, true
	}
	if !ok {
		return nil, fmt.Errorf("export %s: %w: this node holds no model %s@%s", ref, api.ErrNotFound, name, rev)
	}
	m, err := ReadManifest(ctx, reg.store.LocalDAG(), mc)
	if err != nil {
		return nil, fmt.Errorf("export %s: manifest %s: %w: %v", ref, mc, api.ErrNotFound, err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("export %s: %w: manifest %s is for %s", ref, ErrTampered, mc, m.Name)
	}
	plan, err := reg.planCIDs(ctx, ref, m.Root, mc.String())
	if err != nil {
		return nil, err
	}
	plan.res = api.ExportResult{Name: m.Name, Revision: m.Revision, Manifest: mc.String()}
	if rec != nil {
		plan.model = &car.Model{Content: plan.roots[0], Manifest: mc, Record: raw}
		plan.res.Publisher = rec.Publisher
		plan.total += uint64(len(raw))
	}
	return plan, nil
}

// checkCAROut refuses an output path that is relative or exists, or
// whose directory does not.
func checkCAROut(out string) error {
	if !filepath.IsAbs(out) {
		return fmt.Errorf("%w: output path must be absolute", api.ErrBadInput)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%w: %s exists; remove it or choose another -o", api.ErrBadInput, out)
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", api.ErrBadInput, filepath.Dir(out))
	}
	return nil
}
