package fetch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
)

// checkSpace refuses a fetch up front when the store or the destination
// lacks room for it. The room needed comes from the root node's cumulative
// size (the content plus a little DAG overhead), so it costs one block.
// Blocks already held (an interrupted fetch, a pinned root) need no room in
// the store.
func (e *Engine) checkSpace(ctx context.Context, root cid.Cid, out string, timeout time.Duration, received *atomic.Uint64) error {
	if _, empty := emptyBlock(root); empty {
		return nil
	}
	getCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nd, err := e.getCounted(getCtx, root, received)
	if err != nil {
		if ctx.Err() == nil && errors.Is(getCtx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("fetch %s: %w: no peer sent the root block for %s (fetch.timeout); connect to a peer that has it", root, api.ErrNotFound, timeout)
		}
		return e.diskFull(fmt.Errorf("fetch %s: %w", root, err), 0)
	}
	size, err := nd.Size()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	storeNeed, err := e.missingBytes(ctx, nd.Cid(), size)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	if _, isFile := ufs.FileSize(nd); isFile && !e.cfg.Copy {
		// The output file holds the leaves; the store keeps the inner
		// nodes, about 1/300 of a file cut into 1 MiB raw leaves. Leaves
		// that come over bitswap are stored as well, and a disk that
		// fills because of them fails the fetch cleanly.
		storeNeed = min(storeNeed, size/256+1<<20)
	}
	return needSpace(root, filepath.Dir(out), size, e.cfg.Store.Dir(), storeNeed)
}

// missingBytes estimates the bytes below c (of cumulative size size) that
// the store lacks, so a resumed fetch is not asked for room it already
// uses. It reads only inner nodes that are held and asks only whether
// leaves are held, without reading them.
func (e *Engine) missingBytes(ctx context.Context, c cid.Cid, size uint64) (uint64, error) {
	has, err := e.cfg.Store.Blockstore().Has(ctx, c)
	if err != nil {
		return 0, err
	}
	if !has {
		return size, nil
	}
	if c.Prefix().Codec == cid.Raw {
		return 0, nil
	}
	nd, err := e.cfg.Store.LocalDAG().Get(ctx, c)
	if err != nil {
		return size, nil // unreadable here means it will be fetched again
	}
	var missing uint64
	for _, l := range nd.Links() {
		m, err := e.missingBytes(ctx, l.Cid, l.Size)
		if err != nil {
			return 0, err
		}
		missing += m
	}
	return missing, nil
}

// needSpace checks that destDir can take destNeed bytes and storeDir
// storeNeed bytes, adding the two when both live on one file system.
func needSpace(root cid.Cid, destDir string, destNeed uint64, storeDir string, storeNeed uint64) error {
	destFree, destDev, err := freeSpace(destDir)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	storeFree, storeDev, err := freeSpace(storeDir)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	if destDev == storeDev {
		if need := destNeed + storeNeed; need > destFree {
			return fmt.Errorf("fetch %s: %w: needs %s at %s (store and output), %s free",
				root, store.ErrNoSpace, units.HumanBytes(need), destDir, units.HumanBytes(destFree))
		}
		return nil
	}
	if destNeed > destFree {
		return fmt.Errorf("fetch %s: %w: needs %s at %s, %s free", root, store.ErrNoSpace, units.HumanBytes(destNeed), destDir, units.HumanBytes(destFree))
	}
	if storeNeed > storeFree {
		return fmt.Errorf("fetch %s: %w: needs %s in the store at %s, %s free", root, store.ErrNoSpace, units.HumanBytes(storeNeed), storeDir, units.HumanBytes(storeFree))
	}
	return nil
}

// freeSpace returns the bytes an unprivileged user may still write at
// path, and the device path lives on.
func freeSpace(path string) (free uint64, dev uint64, err error) {
	s, err := fsutil.Space(path)
	return s.Free, s.Device, err
}

// diskFull explains a fetch that failed because a disk filled up: a block
// write failed after the fetch began (writeErrsBefore is the store's count
// of failed writes at its start), or the output could not be written. Other
// errors pass unchanged.
func (e *Engine) diskFull(err error, writeErrsBefore uint64) error {
	if err == nil || errors.Is(err, store.ErrNoSpace) {
		return err
	}
	if fsutil.IsDiskFull(err) {
		return fmt.Errorf("%w (free space and fetch again; blocks already fetched are kept): %w", store.ErrNoSpace, err)
	}
	count, last := e.cfg.Store.WriteErrors()
	if count > writeErrsBefore && errors.Is(last, store.ErrNoSpace) {
		return fmt.Errorf("%w: the store at %s is full (free space and fetch again; blocks already fetched are kept): %w",
			store.ErrNoSpace, e.cfg.Store.Dir(), errors.Join(last, err))
	}
	return err
}
