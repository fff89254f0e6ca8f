package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
)

// Add imports the file or directory at path (absolute, on this machine),
// pins it and returns its root.
func (n *Node) addPath(ctx context.Context, path string, progress api.ProgressFunc) (api.AddResult, error) {
	if !filepath.IsAbs(path) {
		return api.AddResult{}, fmt.Errorf("add %s: %w: path must be absolute", path, api.ErrBadInput)
	}
	total, err := treeSize(path)
	if err != nil {
		return api.AddResult{}, fmt.Errorf("add %s: %w", path, err)
	}
	var done uint64
	report := func(d int64) {
		done += uint64(d)
		if progress != nil {
			progress(api.Progress{Done: done, Total: total})
		}
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	nd, err := n.store.Add(ctx, path, store.ImportOptions{Progress: report})
	if err != nil {
		return api.AddResult{}, api.BadInputIf(fmt.Errorf("add: %w", err), store.ErrBadInput)
	}
	name := filepath.Base(path)
	if err := n.store.Pin(ctx, nd.Cid(), name); err != nil {
		return api.AddResult{}, fmt.Errorf("add: %w", err)
	}
	n.log.Info("added", "cid", nd.Cid().String(), "path", path, "bytes", total)
	n.routing.Announce(ctx, nd.Cid())
	return api.AddResult{CID: nd.Cid().String(), Name: name, Size: total}, nil
}

// treeSize sums the sizes of the regular files at or below path.
func treeSize(path string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: no such file or directory", api.ErrBadInput)
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
