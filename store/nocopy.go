package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/filestore"
	posinfo "github.com/ipfs/boxo/filestore/posinfo"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"
)

// newFilestore puts boxo's filestore in front of bs: leaf blocks imported
// with no-copy (posinfo.FilestoreNode, see package manifest) or fetched into
// a file (PutFileRefs) are kept as references to the file that holds them
// instead of a second copy. Every read of such a block re-reads and
// re-hashes the file region, so a file changed or removed on disk makes the
// read fail cleanly rather than hand out wrong bytes. Other blocks go to bs
// unchanged.
//
// The file manager keeps its references (file path, offset and size of a
// leaf) in meta under its own prefix, filestore.FilestorePrefix. It must
// get meta itself: wrapped in a second namespace, writes and reads still
// met but queries found nothing, so GC and MoveFileRefs missed every
// reference.
func newFilestore(bs blockstore.Blockstore, meta datastore.Batching) *filestore.Filestore {
	fm := filestore.NewFileManager(meta, "/")
	fm.AllowFiles = true
	return filestore.NewFilestore(bs, fm, nil)
}

// refPath is the absolute path of the file a reference names: the file
// manager keeps paths relative to its root, "/" (see newFilestore).
func refPath(stored string) string {
	return filepath.Join("/", filepath.FromSlash(stored))
}

// refReads turns a failed read of a file-backed block (the file was moved,
// truncated or changed since the block was recorded) into "not found", so
// the node fetches the block from peers instead of failing, and counts it.
// The reference stays: a disk that is only unmounted for a while must not
// cost the node its imports.
type refReads struct {
	*filestore.Filestore
	// badCopy takes a leaf that cannot be read right out of one of the
	// store's copies (Store.badCopy); owned is false for other files.
	badCopy func(ctx context.Context, c cid.Cid, why error) (owned, rotten bool)
	// sums gets the checksum of every leaf stored (see sums.go).
	sums   leafSums
	log    *slog.Logger
	broken atomic.Uint64
}

// Get returns the block for c, from the block store or the file that holds
// it; a block whose file no longer matches is reported as not found.
func (r *refReads) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := r.Filestore.Get(ctx, c)
	var cre *filestore.CorruptReferenceError
	if !errors.As(err, &cre) {
		return b, err
	}
	if owned, _ := r.badCopy(ctx, c, err); !owned {
		r.broken.Add(1)
		r.log.Debug("file-backed block unreadable; its file was moved or changed", "cid", c.String(), "err", err)
	}
	return nil, ipld.ErrNotFound{Cid: c}
}

// Put stores b. A file-backed leaf (posinfo.FilestoreNode) is recorded as
// a reference; any other block goes to the block store even when a
// reference for it exists, since that reference may be broken (a repair or
// a fetch brings the block because the file no longer holds it).
func (r *refReads) Put(ctx context.Context, b blocks.Block) error {
	if err := r.put(ctx, b); err != nil {
		return err
	}
	return r.keepSums(ctx, []blocks.Block{b})
}

func (r *refReads) put(ctx context.Context, b blocks.Block) error {
	if _, ok := b.(*posinfo.FilestoreNode); ok {
		return r.Filestore.Put(ctx, b)
	}
	main := r.MainBlockstore()
	if has, err := main.Has(ctx, b.Cid()); err != nil || has {
		return err
	}
	return main.Put(ctx, b)
}

// keepSums keeps the checksums of bs, which were verified (or made) by
// whoever stores them. Only leaves are served by them (sums.go); inner
// nodes get one too, so verify, which cannot tell them apart, finds every
// block of a sound store with its checksum.
func (r *refReads) keepSums(ctx context.Context, bs []blocks.Block) error {
	sums := make(map[cid.Cid]uint32, len(bs))
	for _, b := range bs {
		sums[b.Cid()] = Checksum(b.RawData())
	}
	return classifyWriteErr(r.sums.put(ctx, sums))
}

// PutMany stores bs as Put does.
func (r *refReads) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := r.put(ctx, b); err != nil {
			return err
		}
	}
	return r.keepSums(ctx, bs)
}

// FileRef locates one leaf block's bytes inside a file outside the block
// store.
type FileRef struct {
	CID    cid.Cid
	Offset uint64
	Size   int
	// Sum is the CRC-32C of the leaf's verified bytes (Checksum), kept so
	// the leaf can be served without re-hashing (see sums.go); 0 means
	// none is known.
	Sum uint32
}

// PutFileRefs records that the blocks in refs are held in the file at path
// (absolute), at their offsets, instead of copying them into the block
// store. The caller has verified the bytes and written them there. A
// reference already recorded for a CID is replaced, which is how a file
// that was renamed keeps its blocks. Callers that will pin the blocks hold
// PinLock while they do this.
func (s *Store) PutFileRefs(ctx context.Context, path string, refs []FileRef) error {
	if len(refs) == 0 {
		return nil
	}
	maxSize := 0
	for _, r := range refs {
		maxSize = max(maxSize, r.Size)
	}
	// The file manager records len(RawData()) as the size and never reads
	// the data, so every node shares one zero buffer, and every call of a
	// fetch (one per leaf) the store's.
	zeros := s.zeros
	if maxSize > len(zeros) {
		zeros = make([]byte, maxSize)
	}
	nodes := make([]*posinfo.FilestoreNode, len(refs))
	sums := map[cid.Cid]uint32{}
	for i, r := range refs {
		if r.Sum != 0 {
			sums[r.CID] = r.Sum
		}
		b, err := blocks.NewBlockWithCid(zeros[:r.Size], r.CID)
		if err != nil {
			return fmt.Errorf("record %s in %s: %w", r.CID, path, err)
		}
		nodes[i] = &posinfo.FilestoreNode{
			Node:    &merkledag.RawNode{Block: b},
			PosInfo: &posinfo.PosInfo{Offset: r.Offset, FullPath: path},
		}
	}
	if err := s.fs.FileManager().PutMany(ctx, nodes); err != nil {
		return fmt.Errorf("record blocks held in %s: %w", path, classifyWriteErr(err))
	}
	if err := s.refs.sums.put(ctx, sums); err != nil {
		return fmt.Errorf("record checksums of blocks held in %s: %w", path, classifyWriteErr(err))
	}
	return nil
}

// BrokenFileReads counts reads of file-backed blocks that failed because
// the file had changed or gone since the store opened.
func (s *Store) BrokenFileReads() uint64 { return s.refs.broken.Load() }

// SyncFileRefs makes the references recorded so far (PutFileRefs) survive
// a crash of the process or the machine: the metadata datastore buffers
// small writes (its write-ahead log fills 32 KiB blocks) and syncs them
// only when asked. A fetch calls it now and then, so a daemon killed
// mid-fetch resumes from what it had.
func (s *Store) SyncFileRefs(ctx context.Context) error {
	if err := s.meta.Sync(ctx, datastore.NewKey("/")); err != nil {
		return fmt.Errorf("sync file references: %w", err)
	}
	return nil
}

// refsUnder calls fn with every reference to the file path or to a file
// below the directory path, and that file's path relative to path ("."
// for path itself). It reads every reference once.
func (s *Store) refsUnder(ctx context.Context, path string, fn func(rel string, r *filestore.ListRes)) error {
	next, err := filestore.ListAll(ctx, s.fs, false)
	if err != nil {
		return err
	}
	for r := next(ctx); r != nil; r = next(ctx) {
		if r.Status != filestore.StatusOk {
			continue
		}
		rel, err := filepath.Rel(path, refPath(r.FilePath))
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		fn(rel, r)
	}
	return nil
}

// ForgetFileRefs deletes the references that say blocks are held in the
// file path: those of cids, or every one (a scan of all references) when
// cids is nil. A caller that removes a file it recorded blocks in calls
// it, so no reference is left pointing at a file that is gone. A
// reference of one of cids to another file stays.
func (s *Store) ForgetFileRefs(ctx context.Context, path string, cids []cid.Cid) error {
	path = filepath.Clean(path)
	if cids == nil {
		err := s.refsUnder(ctx, path, func(rel string, r *filestore.ListRes) {
			if rel == "." {
				cids = append(cids, r.Key)
			}
		})
		if err != nil {
			return fmt.Errorf("forget file references to %s: %w", path, err)
		}
	}
	for _, c := range cids {
		r := filestore.List(ctx, s.fs, c)
		if r.Status != filestore.StatusOk || refPath(r.FilePath) != path {
			continue
		}
		if err := s.fs.FileManager().DeleteBlock(ctx, c); err != nil && !ipld.IsNotFound(err) {
			return fmt.Errorf("forget file references to %s: %w", path, err)
		}
	}
	return nil
}

// DropCopies deletes the block store's own copies of those of cids that
// are also recorded as held in a file (PutFileRefs); the others stay. A
// fetch calls it for leaves the network DAG stored on the way in (bitswap)
// once it has written them into its output, so their bytes are on disk
// once. It returns how many copies went.
func (s *Store) DropCopies(ctx context.Context, cids []cid.Cid) (int, error) {
	n := 0
	for _, c := range cids {
		held, err := s.fs.FileManager().Has(ctx, c)
		if err != nil {
			return n, fmt.Errorf("drop the copy of %s: %w", c, err)
		}
		if !held {
			continue
		}
		err = s.fs.MainBlockstore().DeleteBlock(ctx, c)
		switch {
		case err == nil:
			n++
		case !ipld.IsNotFound(err):
			return n, fmt.Errorf("drop the copy of %s: %w", c, err)
		}
	}
	return n, nil
}

// MoveFileRefs re-points the blocks recorded as held in the file from, or
// in any file below the directory from, at the same place under to: a
// caller that renames a file or directory holding blocks calls it first,
// so no reference is left pointing at a name that is gone. It returns how
// many references moved. It reads every reference once.
func (s *Store) MoveFileRefs(ctx context.Context, from, to string) (int, error) {
	from, to = filepath.Clean(from), filepath.Clean(to)
	moved := map[string][]FileRef{}
	n := 0
	err := s.refsUnder(ctx, from, func(rel string, r *filestore.ListRes) {
		dest := filepath.Join(to, rel)
		moved[dest] = append(moved[dest], FileRef{CID: r.Key, Offset: r.Offset, Size: int(r.Size)})
		n++
	})
	if err != nil {
		return 0, fmt.Errorf("move file references from %s: %w", from, err)
	}
	for dest, refs := range moved {
		if err := s.PutFileRefs(ctx, dest, refs); err != nil {
			return 0, fmt.Errorf("move file references from %s: %w", from, err)
		}
	}
	return n, nil
}
