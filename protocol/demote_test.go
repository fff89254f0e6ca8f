package protocol

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/ipfs/boxo/blockstore"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// demotedFetchWait bounds the wait for a block from a demoted only holder:
// far below StallerDemotedFor, the minute the stall lasted before.
const demotedFetchWait = 10 * time.Second

// TestBitswapFetchesFromDemotedOnlyHolder reproduces the room stall of
// issue 15: a fetch's bulk side reported its seeder stalling (a mirror
// shared by a class is slow to send a chunk's first block), which demotes
// the seeder in the Guard for StallerDemotedFor. A fetch of a new root
// within that minute got no block, not even the root: the seeder is its
// only holder, and the Guard turned the seeder's HAVEs into DONT_HAVEs, so
// bitswap never sent it a want-block, and the demotion ends only with a
// block from it. A demoted peer must stay askable.
func TestBitswapFetchesFromDemotedOnlyHolder(t *testing.T) {
	fetcher, seeder := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	guard := NewGuard(fetcher, slog.New(slog.DiscardHandler))
	fbs := NewBitswap(ctx, fetcher, nil, blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())), BitswapConfig{Guard: guard})
	defer fbs.Close()
	store := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	// Bigger than bitswap's 1 KiB limit for answering a want-have with
	// the block itself: the seeder answers HAVE.
	blk := p2ptest.RawBlocks(1, 64<<10)[0]
	if err := store.Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	sbs := NewBitswap(ctx, seeder, nil, store, BitswapConfig{})
	defer sbs.Close()

	guard.ReportStall(seeder.ID(), GuardBulk)
	start := time.Now()
	gctx, gcancel := context.WithTimeout(ctx, demotedFetchWait)
	defer gcancel()
	if _, err := fbs.GetBlock(gctx, blk.Cid()); err != nil {
		t.Fatalf("no block from the demoted only holder within %s: %v", demotedFetchWait, err)
	}
	t.Logf("got the block from the demoted only holder in %s", time.Since(start).Round(time.Millisecond))
}
