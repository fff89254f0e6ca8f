// Package store owns what allmende keeps on disk: a content-addressed block
// store (boxo blockstore on flatfs), whole copies of added files (files/,
// copies.go), a metadata datastore (pebble) holding pins, references to
// the files that hold leaves (boxo's filestore) and leaf checksums, UnixFS
// import and export, and garbage collection.
//
// The store knows nothing of the network. Other packages reach blocks that
// are not local by wrapping Blockstore with an exchange (the network DAG
// that package node builds); LocalDAG never leaves the disk.
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
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/filestore"
	"github.com/ipfs/boxo/ipld/merkledag"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	pinner "github.com/ipfs/boxo/pinning/pinner"
	"github.com/ipfs/boxo/pinning/pinner/dspinner"
	"github.com/ipfs/go-datastore"
	flatfs "github.com/ipfs/go-ds-flatfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
	ipld "github.com/ipfs/go-ipld-format"
)

// Layout of a store directory.
const (
	// MarkerFile marks a directory as an allmende store. A store directory
	// without it (an unmounted disk, a typo) is refused rather than treated
	// as empty.
	MarkerFile = "allmende-store"
	blocksDir  = "blocks"
	metaDir    = "meta"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound means a block or pin is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrNoStore means the directory holds no initialised store.
	ErrNoStore = errors.New("no allmende store")
	// ErrBadInput marks errors caused by the caller's input (a missing
	// path, an unsupported file type, a symlink leaving its tree), as
	// opposed to store failures. It is fsutil.ErrBadInput.
	ErrBadInput = fsutil.ErrBadInput
	// ErrLinkEscapes means a symlink resolves, after following the links
	// in its chain, outside the directory it belongs to (see
	// fsutil.ResolveInside).
	ErrLinkEscapes = fsutil.ErrLinkEscapes
)

func init() {
	// boxo keeps some importer settings (chunk size, links per node, HAMT
	// thresholds) in package variables. Set them to the unixfs-v1-2025
	// profile once, before any import can run, so every allmende node gives
	// the same bytes the same CID.
	uio.UnixFS_v1_2025.ApplyGlobals()
}

// Options configure Open.
type Options struct {
	// Sync makes every block write durable (fsync) before it returns.
	Sync bool
	// DirectIO writes the copies Add keeps with direct I/O (copies.go).
	DirectIO bool
	// Logger receives reports of corrupt blocks; nil means slog.Default().
	Logger *slog.Logger
}

// Store is an opened allmende store. It is safe for concurrent use.
type Store struct {
	dir    string
	blocks *flatfs.Datastore
	meta   *pebbleds.Datastore
	bs     blockstore.GCBlockstore
	vbs    *verifyingBlockstore
	fs     *filestore.Filestore
	refs   *refReads
	// verified are the files verified whole, for Serving.
	verified      verifiedFiles
	unhashedReads atomic.Uint64
	// closeOnce makes Close idempotent; closeErr is its result.
	closeOnce sync.Once
	closeErr  error
	dag       ipld.DAGService
	pins      pinner.Pinner
	// zeros stands in for the bytes of leaves recorded by reference
	// (PutFileRefs); nothing writes it.
	zeros []byte
	// shard names the directory of a block's file in the block store.
	shard flatfs.ShardFunc
	// sync and directIO are Options.Sync and Options.DirectIO.
	sync, directIO bool
}

// Init creates a store at dir if none is there. It is idempotent.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init store %s: %w", dir, err)
	}
	marker := filepath.Join(dir, MarkerFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("init store %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("init store %s: directory is not empty and holds no %s file", dir, MarkerFile)
	}
	if err := fsutil.WriteFileAtomic(marker, []byte("allmende store v1\n"), 0o600); err != nil {
		return fmt.Errorf("init store %s: %w", dir, err)
	}
	return nil
}

// Open opens the store at dir, which Init must have created.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err != nil {
		return nil, fmt.Errorf("open store %s: %w (is the disk mounted? run `allmende init` for a new store)", dir, ErrNoStore)
	}
	shard := flatfs.NextToLast(2)
	blocks, err := flatfs.CreateOrOpen(filepath.Join(dir, blocksDir), shard, opts.Sync)
	if err != nil {
		return nil, fmt.Errorf("open block store: %w", err)
	}
	meta, err := pebbleds.NewDatastore(filepath.Join(dir, metaDir))
	if err != nil {
		blocks.Close()
		return nil, fmt.Errorf("open metadata store: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// Every read is re-hashed: a block in the block store by
	// verifyingBlockstore, which quarantines one that rotted on disk; a
	// file-backed block by the filestore, which reports a changed file.
	vbs := newVerifyingBlockstore(blockstore.NewBlockstore(blocks, blockstore.NoPrefix(), blockstore.WriteThrough(true)), dir, log)
	fs := newFilestore(vbs, meta)
	refs := &refReads{Filestore: fs, sums: newLeafSums(meta), log: log}
	bs := blockstore.NewGCBlockstore(refs, blockstore.NewGCLocker())
	dag := merkledag.NewDAGService(blockservice.New(bs, nil))
	pins, err := dspinner.New(ctx, meta, pinWalkDAG{DAGService: dag, bs: bs})
	if err != nil {
		meta.Close()
		blocks.Close()
		return nil, fmt.Errorf("open pins: %w", err)
	}
	st := &Store{dir: dir, blocks: blocks, meta: meta, bs: bs, vbs: vbs, fs: fs, refs: refs, dag: dag, pins: pins, zeros: make([]byte, ChunkSize), shard: shard.Func(), sync: opts.Sync, directIO: opts.DirectIO}
	refs.badCopy = st.badCopy
	return st, nil
}

// Close flushes and closes the store. Later calls do nothing and return
// what the first returned.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.pins.Flush(context.Background()), s.meta.Close(), s.blocks.Close())
	})
	return s.closeErr
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Blockstore is the local block store. Callers that write blocks for a root
// they will pin hold PinLock while they do, so GC cannot remove them.
func (s *Store) Blockstore() blockstore.GCBlockstore { return s.bs }

// Meta is the metadata datastore. Pins live in it under their own keys;
// other packages may keep small durable state there under a namespace of
// their own (package node keeps the DHT provide list under /routing).
func (s *Store) Meta() datastore.Batching { return s.meta }

// LocalDAG is a DAG service over the blocks this store holds, and nothing
// else: a Get of a block not held fails at once (ipld.ErrNotFound), it never
// asks the network. Packages above the store build a network DAG (one that
// fetches what is missing through an exchange) under another name.
func (s *Store) LocalDAG() ipld.DAGService { return s.dag }

// DiskUsage is the bytes the block store and the copies of added files
// occupy.
func (s *Store) DiskUsage(ctx context.Context) (uint64, error) {
	n, err := s.blocks.DiskUsage(ctx)
	return n + s.copiesUsage(), err
}
