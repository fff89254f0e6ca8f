package store

import (
	"context"
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
)

// GCResult tells what a garbage collection freed.
type GCResult struct {
	// Removed is the number of blocks deleted.
	Removed int `json:"removed"`
	// Freed is the number of bytes deleted: block files, and the store's
	// copies of added files no reference points into any more. Blocks held
	// as references into other files (no-copy) free nothing and count as
	// removed.
	Freed uint64 `json:"freed"`
	// Kept is the number of blocks still held.
	Kept int `json:"kept"`
}

// GC deletes every block that no pin reaches. It holds the GC lock, so it
// waits for running imports and fetches (which hold the pin lock) and they
// wait for it. A pinned block is never deleted: if marking fails, nothing is.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	unlock := s.bs.GCLock(ctx)
	defer unlock.Unlock(ctx)

	live, err := s.markPinned(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: mark: %w", err)
	}
	keys, err := s.bs.AllKeysChan(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: list blocks: %w", err)
	}
	var res GCResult
	for k := range keys {
		if _, ok := live[string(k.Hash())]; ok {
			res.Kept++
			continue
		}
		// Only a copy in the block store frees disk; a reference into a
		// file (no-copy import, fetched file) is just forgotten.
		var size int
		if copied, err := s.vbs.Has(ctx, k); err != nil {
			return res, fmt.Errorf("gc: %s: %w", k, err)
		} else if copied {
			if size, err = s.vbs.GetSize(ctx, k); err != nil {
				return res, fmt.Errorf("gc: %s: %w", k, err)
			}
		}
		if err := s.bs.DeleteBlock(ctx, k); err != nil {
			return res, fmt.Errorf("gc: delete %s: %w", k, err)
		}
		if err := s.refs.sums.delete(ctx, k); err != nil {
			return res, fmt.Errorf("gc: delete checksum of %s: %w", k, err)
		}
		res.Removed++
		res.Freed += uint64(size)
	}
	// The references just deleted must be on disk before the copies they
	// pointed into go, or a crash could leave references into nothing.
	if err := s.meta.Sync(ctx, datastore.NewKey("/")); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	freed, err := s.removeUnusedCopies(ctx)
	res.Freed += freed
	if err != nil {
		return res, fmt.Errorf("gc: remove copies: %w", err)
	}
	return res, ctx.Err()
}

// markPinned returns the multihashes of every block reachable from a pin.
// Blocks are keyed by multihash because the block store lists keys as raw
// CIDs whatever codec they were stored under.
func (s *Store) markPinned(ctx context.Context) (map[string]struct{}, error) {
	live := make(map[string]struct{})
	visit := func(c cid.Cid) bool {
		k := string(c.Hash())
		if _, seen := live[k]; seen {
			return false
		}
		live[k] = struct{}{}
		return true
	}
	getLinks := merkledag.GetLinksWithDAG(s.dag)
	for p := range s.pins.RecursiveKeys(ctx, false) {
		if p.Err != nil {
			return nil, p.Err
		}
		if err := merkledag.Walk(ctx, getLinks, p.Pin.Key, visit); err != nil {
			return nil, fmt.Errorf("walk %s: %w", p.Pin.Key, err)
		}
	}
	for p := range s.pins.DirectKeys(ctx, false) {
		if p.Err != nil {
			return nil, p.Err
		}
		visit(p.Pin.Key)
	}
	for p := range s.pins.InternalPins(ctx, false) {
		if p.Err != nil {
			return nil, p.Err
		}
		visit(p.Pin.Key)
	}
	return live, nil
}
