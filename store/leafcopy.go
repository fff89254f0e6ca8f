package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/allmende/allmende/store/chunks"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/ipfs/go-cid"
)

// leafCopyBatch is how many leaves a LeafCopy writes before it records
// them (after a sync, with Options.Sync): one metadata batch per 64 MiB of
// 1 MiB leaves instead of one per leaf.
const leafCopyBatch = 64

// LeafCopy keeps raw leaves that arrive already verified and in file
// order, as a CAR import brings a file's leaves, the way Add keeps an added
// file: appended to one copy under the store's files/ directory, each
// recorded as held there (with its checksum, see sums.go). Against one
// block file per leaf, that writes the bytes in one sequential stream
// (with direct I/O when the store has Options.DirectIO), costs one inode
// instead of one per MiB, and lets GC free the file with one unlink once
// no reference points into it; a copy holding one file's leaves from its
// first byte is a file held whole (OpenWholeFile). Disk use is the same as
// in the block store: each leaf's bytes once.
//
// A leaf is recorded only once its bytes are in the copy (and synced, with
// Options.Sync), so a crash leaves at most unrecorded bytes, which GC
// removes. The caller holds PinLock from NewLeafCopy until it has pinned
// what it imported, as for Add. A LeafCopy is not safe for concurrent use.
type LeafCopy struct {
	s       *Store
	f       *os.File
	w       *copyWriter
	stage   []byte // page-aligned, for direct I/O
	off     int64
	pending []FileRef
}

// NewLeafCopy creates an empty copy to append leaves to. Close must be
// called.
func (s *Store) NewLeafCopy() (*LeafCopy, error) {
	dir := filepath.Join(s.dir, copiesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("new leaf copy: %w", err)
	}
	f, err := os.CreateTemp(dir, "*.data")
	if err != nil {
		return nil, fmt.Errorf("new leaf copy: %w", classifyWriteErr(err))
	}
	lc := &LeafCopy{s: s, f: f, w: newCopyWriter(f, s.directIO)}
	if lc.w.direct != nil {
		lc.stage = chunks.AlignedBuffer(ChunkSize)
	}
	return lc, nil
}

// Put appends data, the bytes of the raw leaf c, which the caller has
// verified against c, and records it as held in the copy (in batches).
func (lc *LeafCopy) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fsutil.CheckRoom(lc.s.dir, uint64(len(data))); err != nil {
		return err
	}
	b := data
	// Direct I/O needs page-aligned memory; the leaf's buffer is the
	// caller's, so it is staged (a copy costs far less than the write).
	if lc.stage != nil && len(data) <= len(lc.stage) && len(data)%chunks.Align == 0 {
		b = lc.stage[:len(data)]
		copy(b, data)
	}
	if err := lc.w.writeAt(lc.off, b); err != nil {
		return fmt.Errorf("write leaf %s to %s: %w", c, lc.f.Name(), classifyWriteErr(err))
	}
	lc.pending = append(lc.pending, FileRef{CID: c, Offset: uint64(lc.off), Size: len(data), Sum: Checksum(data)})
	lc.off += int64(len(data))
	if len(lc.pending) >= leafCopyBatch {
		return lc.flush(ctx)
	}
	return nil
}

// flush records the leaves written since the last flush, once their bytes
// are durable when the store syncs.
func (lc *LeafCopy) flush(ctx context.Context) error {
	if len(lc.pending) == 0 {
		return nil
	}
	if lc.s.sync {
		if err := lc.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", lc.f.Name(), classifyWriteErr(err))
		}
	}
	if err := lc.s.PutFileRefs(ctx, lc.f.Name(), lc.pending); err != nil {
		return err
	}
	lc.pending = lc.pending[:0]
	return nil
}

// Size is the number of bytes appended so far.
func (lc *LeafCopy) Size() int64 { return lc.off }

// Close records the leaves not yet recorded and closes the copy; a copy
// that holds nothing is removed. Leaves recorded stay held whatever the
// caller does next.
func (lc *LeafCopy) Close(ctx context.Context) error {
	// Leaves written are verified: record them even when ctx was
	// cancelled, so a retry need not bring them again.
	err := lc.flush(context.WithoutCancel(ctx))
	err = errors.Join(err, classifyWriteErr(lc.w.close()))
	if lc.off == 0 {
		os.Remove(lc.f.Name())
	}
	if err != nil {
		return fmt.Errorf("close leaf copy: %w", err)
	}
	return nil
}
