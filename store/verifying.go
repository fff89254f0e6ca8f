package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// quarantineDir is where blocks that fail verification are moved, inside
// the store directory, for a person to inspect. Nothing reads them back.
const quarantineDir = "quarantine"

// Sentinels for what the disk did.
var (
	// ErrCorrupt means a block's bytes do not hash to its CID.
	ErrCorrupt = errors.New("corrupt block")
	// ErrNoSpace means the disk is full. It is permanent for the
	// operation that met it: retrying without freeing space cannot help.
	// It is fsutil.ErrNoSpace, which fsutil.CheckRoom returns.
	ErrNoSpace = fsutil.ErrNoSpace
)

// verifyingBlockstore re-hashes every block it reads against its CID, so a
// block that rotted on disk is never handed to an exporter or to a peer. A
// block that fails is moved to the quarantine directory, logged, and
// reported as not found, so callers fetch it again from peers. It also
// remembers failed writes, so a fetch can tell a full disk from a missing
// peer.
type verifyingBlockstore struct {
	blockstore.Blockstore
	// dir is the store's directory, whose disk Put keeps a reserve on.
	dir        string
	quarantine string
	log        *slog.Logger

	mu          sync.Mutex // serialises quarantining
	quarantined atomic.Uint64
	writeErrs   atomic.Uint64
	lastWrite   atomic.Pointer[error]
}

func newVerifyingBlockstore(inner blockstore.Blockstore, dir string, log *slog.Logger) *verifyingBlockstore {
	if log == nil {
		log = slog.Default()
	}
	return &verifyingBlockstore{Blockstore: inner, dir: dir, quarantine: filepath.Join(dir, quarantineDir), log: log}
}

// Get returns the block for c if it is held and its bytes hash to c.
func (v *verifyingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := v.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := checkBlock(c, b.RawData()); err != nil {
		v.quarantineBlock(ctx, c, b.RawData(), err)
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return b, nil
}

// Put stores b, classifying a full disk as ErrNoSpace. It refuses to fill
// the disk's reserve (see CheckRoom).
func (v *verifyingBlockstore) Put(ctx context.Context, b blocks.Block) error {
	if err := fsutil.CheckRoom(v.dir, uint64(len(b.RawData()))); err != nil {
		return v.noteWrite(err)
	}
	return v.noteWrite(v.Blockstore.Put(ctx, b))
}

// PutMany stores bs as Put does.
func (v *verifyingBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	var need uint64
	for _, b := range bs {
		need += uint64(len(b.RawData()))
	}
	if err := fsutil.CheckRoom(v.dir, need); err != nil {
		return v.noteWrite(err)
	}
	return v.noteWrite(v.Blockstore.PutMany(ctx, bs))
}

func (v *verifyingBlockstore) noteWrite(err error) error {
	if err == nil {
		return nil
	}
	err = classifyWriteErr(err)
	v.writeErrs.Add(1)
	v.lastWrite.Store(&err)
	return err
}

// classifyWriteErr marks a full disk (fsutil.IsDiskFull) as ErrNoSpace and leaves
// other errors alone.
func classifyWriteErr(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	if fsutil.IsDiskFull(err) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// checkBlock re-hashes data and compares it with c.
func checkBlock(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, c, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: %s: content hashes to %s", ErrCorrupt, c, got)
	}
	return nil
}

// quarantineBlock moves a corrupt block out of the block store.
func (v *verifyingBlockstore) quarantineBlock(ctx context.Context, c cid.Cid, data []byte, why error) {
	v.isolate(ctx, c, data, why, func() error {
		if has, err := v.Blockstore.Has(ctx, c); err != nil || !has {
			return errGone // another reader got here first
		}
		return v.Blockstore.DeleteBlock(ctx, c)
	})
}

// errGone tells isolate that the block was removed already.
var errGone = errors.New("already removed")

// isolate keeps data, the bytes read for block c, in the quarantine
// directory and then calls remove to take the block out of use. A failure
// to keep the copy is logged and the block is removed anyway: serving it
// again would be worse than losing the evidence.
func (v *verifyingBlockstore) isolate(ctx context.Context, c cid.Cid, data []byte, why error, remove func() error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	keep := filepath.Join(v.quarantine, c.String()+".data")
	if err := os.MkdirAll(v.quarantine, 0o700); err != nil {
		v.log.Error("cannot create quarantine directory", "path", v.quarantine, "err", err)
	} else if err := fsutil.WriteFileAtomic(keep, data, 0o600); err != nil {
		v.log.Error("cannot keep corrupt block in quarantine", "cid", c.String(), "path", keep, "err", err)
	}
	if err := remove(); errors.Is(err, errGone) {
		return
	} else if err != nil {
		v.log.Error("cannot remove corrupt block", "cid", c.String(), "err", err)
		return
	}
	v.quarantined.Add(1)
	v.log.Warn("corrupt block quarantined; it will be fetched again from peers", "cid", c.String(), "path", keep, "err", why)
}

// WriteErrors returns how many block writes failed since the store opened
// and the last such error (nil if none).
func (s *Store) WriteErrors() (uint64, error) {
	n := s.vbs.writeErrs.Load()
	if p := s.vbs.lastWrite.Load(); p != nil {
		return n, *p
	}
	return n, nil
}

// Quarantined is how many corrupt blocks reads have moved to quarantine
// since the store opened.
func (s *Store) Quarantined() uint64 { return s.vbs.quarantined.Load() }

// QuarantineDir is where corrupt blocks are kept.
func (s *Store) QuarantineDir() string { return filepath.Join(s.dir, quarantineDir) }
