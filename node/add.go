package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/allmende/allmende/store"
)

// Progress reports how far a long operation is.
type Progress struct {
	Done  uint64 `json:"done"`
	Total uint64 `json:"total"`
}

// ProgressFunc receives progress reports; it must return quickly.
type ProgressFunc func(Progress)

// AddResult describes an added root.
type AddResult struct {
	CID  string `json:"cid"`
	Name string `json:"name"`
	Size uint64 `json:"size"`
}

// Add imports the file or directory at path (absolute, on this machine),
// pins it and returns its root.
func (n *Node) Add(ctx context.Context, path string, progress ProgressFunc) (AddResult, error) {
	if !filepath.IsAbs(path) {
		return AddResult{}, fmt.Errorf("add %s: %w: path must be absolute", path, ErrBadInput)
	}
	total, err := treeSize(path)
	if err != nil {
		return AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	var done uint64
	report := func(d int64) {
		done += uint64(d)
		if progress != nil {
			progress(Progress{Done: done, Total: total})
		}
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	nd, err := n.store.Add(ctx, path, store.ImportOptions{Progress: report})
	if err != nil {
		if errors.Is(err, store.ErrBadInput) {
			return AddResult{}, fmt.Errorf("add: %w: %w", ErrBadInput, err)
		}
		return AddResult{}, fmt.Errorf("add: %w", err)
	}
	name := filepath.Base(path)
	if err := n.store.Pin(ctx, nd.Cid(), name); err != nil {
		return AddResult{}, fmt.Errorf("add: %w", err)
	}
	n.log.Info("added", "cid", nd.Cid().String(), "path", path, "bytes", total)
	n.routing.announce(ctx, nd.Cid())
	return AddResult{CID: nd.Cid().String(), Name: name, Size: total}, nil
}

// treeSize sums the sizes of the regular files at or below path.
func treeSize(path string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: no such file or directory", ErrBadInput)
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += uint64(info.Size())
		}
		return nil
	})
	return total, err
}
