package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/allmende/allmende/store/chunks"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/filestore"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// A file added with Add that spans more than one leaf is kept as one whole
// copy under copiesDir, and its leaves are recorded as references into
// that copy, as for a file imported in place (nocopy.go). Against a block
// store with one file per leaf, that writes the bytes in one sequential
// stream (with direct I/O where the file system has it, so a model bigger
// than memory does not push everything else out of the page cache), costs
// one inode instead of one per MiB, and lets GC free it with one unlink. The copy belongs to the store:
// nobody else writes it, GC removes it once no reference points into it,
// and a leaf found rotten in it is quarantined like a block.

// copiesDir holds the whole copies of added files, inside the store.
const copiesDir = "files"

// Add imports the file or directory at path into the store like Import,
// keeping every file of more than one leaf as a whole copy (see above).
// The caller holds PinLock until it has pinned the root.
func (s *Store) Add(ctx context.Context, path string, opts ImportOptions) (ipld.Node, error) {
	return importInto(ctx, s.dag, path, opts, s)
}

// copyFile copies the file in (with info fi) into the store and returns
// the root of its DAG, whose leaves are kept by reference into the copy.
// A leaf is recorded only once its bytes are in the copy. On failure the
// copy is removed; references already recorded into it are dropped when
// next read (badCopy) and go at the next GC.
func (s *Store) copyFile(ctx context.Context, in *os.File, fi os.FileInfo, progress func(int64)) (nd ipld.Node, err error) {
	if err := fsutil.CheckRoom(s.dir, uint64(fi.Size())); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, copiesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "*.data")
	if err != nil {
		return nil, classifyWriteErr(err)
	}
	w := newCopyWriter(out, s.directIO)
	defer func() {
		if cerr := w.close(); err == nil && cerr != nil {
			err = classifyWriteErr(cerr)
		}
		if err != nil {
			os.Remove(out.Name())
		}
	}()
	// The DAG builder records leaves as held in the file Reader names.
	named, err := files.NewReaderPathFile(out.Name(), io.NopCloser(in), fi)
	if err != nil {
		return nil, err
	}
	cr := chunks.NewReader(in, w.writeAt, chunks.Options{Reader: named, Progress: progress, Recycle: true, Ordered: true})
	nd, err = BuildChunks(s.dag, cr, true)
	n, werr := cr.Close()
	switch {
	case werr != nil:
		return nil, classifyWriteErr(werr)
	case err != nil:
		return nil, err
	case n != fi.Size():
		return nil, fmt.Errorf("file changed while read (%d bytes, expected %d)", n, fi.Size())
	}
	if s.sync {
		if err := out.Sync(); err != nil {
			return nil, classifyWriteErr(err)
		}
	}
	return nd, nil
}

// copyWriter writes a copy's chunks: the page-aligned ones through a
// second descriptor opened for direct I/O when the file system allows it,
// the rest (the tail) through the page cache.
type copyWriter struct {
	f      *os.File
	direct *os.File // nil: no direct I/O
}

func newCopyWriter(f *os.File, directIO bool) *copyWriter {
	w := &copyWriter{f: f}
	if directIO {
		w.direct = openDirect(f.Name())
	}
	return w
}

// writeAt writes b at off; ChunkReader's buffers are page-aligned. A
// file system that opened the file for direct I/O but refuses the write
// (EINVAL: it wants another alignment) gets the rest through the page
// cache.
func (w *copyWriter) writeAt(off int64, b []byte) error {
	if w.direct != nil && off%chunks.Align == 0 && len(b)%chunks.Align == 0 {
		_, err := w.direct.WriteAt(b, off)
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		w.direct.Close()
		w.direct = nil
	}
	_, err := w.f.WriteAt(b, off)
	return err
}

func (w *copyWriter) close() error {
	var err error
	if w.direct != nil {
		err = w.direct.Close()
	}
	return errors.Join(err, w.f.Close())
}

// isCopy reports whether path is one of the store's copies.
func (s *Store) isCopy(path string) bool {
	rel, err := filepath.Rel(filepath.Join(s.dir, copiesDir), path)
	return err == nil && !strings.HasPrefix(rel, "..") && !strings.ContainsRune(rel, filepath.Separator)
}

// removeUnusedCopies deletes the copies no reference points into any
// more (their roots were collected, or an add was cut short) and returns
// the bytes freed. GC calls it with the pin lock excluded, so no add is
// recording references meanwhile.
func (s *Store) removeUnusedCopies(ctx context.Context) (uint64, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, copiesDir))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	next, err := filestore.ListAll(ctx, s.fs, false)
	if err != nil {
		return 0, err
	}
	for r := next(ctx); r != nil; r = next(ctx) {
		if r.Status == filestore.StatusOk || r.Status == filestore.StatusFileChanged {
			used[refPath(r.FilePath)] = true
		}
	}
	var freed uint64
	for _, e := range entries {
		p := filepath.Join(s.dir, copiesDir, e.Name())
		if used[p] {
			continue
		}
		if info, err := e.Info(); err == nil {
			freed += uint64(info.Size())
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return freed, err
		}
	}
	return freed, ctx.Err()
}

// copiesUsage is the bytes the store's copies occupy.
func (s *Store) copiesUsage() uint64 {
	entries, _ := os.ReadDir(filepath.Join(s.dir, copiesDir))
	var total uint64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			total += uint64(info.Size())
		}
	}
	return total
}

// badCopy handles a leaf recorded as held in one of the store's copies
// that could not be read back right. If the copy is gone (an add that
// failed removed it), the reference is dropped: the leaf is simply not
// held. If the bytes no longer match the CID (bit rot), they are kept for
// inspection and the reference is dropped, so the leaf counts as missing
// and is fetched again, as verifyingBlockstore does with a rotten block
// (rotten). owned is false for a leaf held in a file that is not a copy
// (imported in place, fetched), which the store leaves alone.
func (s *Store) badCopy(ctx context.Context, c cid.Cid, why error) (owned, rotten bool) {
	ref := filestore.List(ctx, s.fs, c)
	path := refPath(ref.FilePath)
	if ref.Status == filestore.StatusKeyNotFound || !s.isCopy(path) {
		return false, false
	}
	drop := func() error {
		err := s.fs.FileManager().DeleteBlock(ctx, c)
		if ipld.IsNotFound(err) {
			return errGone // another reader got here first
		}
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		drop()
		return true, false
	}
	var data []byte
	if err == nil {
		data, _ = readAt(f, int64(ref.Offset), int(ref.Size), nil)
		f.Close()
	}
	s.vbs.isolate(ctx, c, data, why, drop)
	return true, true
}
