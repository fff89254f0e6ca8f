package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// maxDirSinkFiles is the most files a directory fetch writes straight into
// its output (one open file each). A directory with more is fetched into
// the block store and exported afterwards, as before.
const maxDirSinkFiles = 256

// errTooManyFiles means a directory has more files than a dirSink writes.
var errTooManyFiles = errors.New("too many files to write while fetching")

// dirSink writes the files of a UnixFS directory straight into the fetch's
// partial output directory while their leaves arrive, one fileSink per
// file, so a directory's bytes are on disk once, as a single file's are
// (fileSink): no copy in the block store, no export pass. It is built once
// the directory's inner nodes are local (the walker fetches those first);
// a leaf goes to every file that holds it.
type dirSink struct {
	// tmp is the partial output directory, renamed to out last; each
	// file's held leaves are pointed at their name under out when the
	// file is complete.
	tmp, out string
	st       *store.Store
	files    []dirFile
	// byLeaf lists the files each leaf CID is part of (set up before the
	// leaves arrive, read-only after).
	byLeaf map[cid.Cid][]*fileSink
	// kick is given to each file sink (refSyncer).
	kick func()
	// dirs and links are the directories and symlinks made, relative to
	// tmp: synced and checked at finish.
	dirs, links []string
}

// dirFile is one file of the directory and where it goes.
type dirFile struct {
	sink *fileSink
	path string
}

// newDirSink creates the partial output directory for out (or reuses the
// one an interrupted fetch left) with the directory tree of root, read
// from dag, and a file sink for each file (given kick, see refSyncer). A file completed by that
// earlier fetch becomes a partial file again, whose held leaves the walker
// then reads back. It fails with errTooManyFiles beyond maxDirSinkFiles.
func newDirSink(ctx context.Context, dag ipld.DAGService, st *store.Store, root cid.Cid, out string, kick func()) (*dirSink, error) {
	tmp := store.PartialPath(out)
	if fi, err := os.Lstat(tmp); err == nil && !fi.IsDir() {
		if err := os.Remove(tmp); err != nil {
			return nil, fmt.Errorf("remove stale partial output: %w", err)
		}
	}
	if err := os.Mkdir(tmp, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	r, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	d := &dirSink{tmp: tmp, out: out, st: st, kick: kick, byLeaf: make(map[cid.Cid][]*fileSink)}
	nd, err := dag.Get(ctx, root)
	if err != nil {
		return nil, err
	}
	if err := d.addDir(ctx, dag, r, nd, "."); err != nil {
		d.abort(false)
		return nil, err
	}
	return d, nil
}

// addDir makes the entries of the directory nd below rel.
func (d *dirSink) addDir(ctx context.Context, dag ipld.DAGService, r *os.Root, nd ipld.Node, rel string) error {
	dir, err := uio.NewDirectoryFromNode(dag, nd)
	if err != nil {
		return err
	}
	return dir.ForEachLink(ctx, func(l *ipld.Link) error {
		if err := store.CheckEntryName(l.Name); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if strings.HasSuffix(l.Name, ".allmende-partial") {
			return fmt.Errorf("%s: %w: entry name %q is reserved for partial outputs", rel, store.ErrBadInput, l.Name)
		}
		if l.Cid.Prefix().Codec == cid.Raw {
			// A file of one leaf, not fetched yet: its size is the
			// link's, which the sink checks against the leaf.
			return d.addFile(ctx, dag, l.Cid, nil, l.Size, filepath.Join(rel, l.Name))
		}
		child, err := l.GetNode(ctx, dag)
		if err != nil {
			return err
		}
		return d.addEntry(ctx, dag, r, child, filepath.Join(rel, l.Name))
	})
}

// addEntry makes the entry nd at rel: a directory, a symlink, or a file
// sink.
func (d *dirSink) addEntry(ctx context.Context, dag ipld.DAGService, r *os.Root, nd ipld.Node, rel string) error {
	kind, err := ufs.Type(nd)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	switch kind {
	case unixfs.TDirectory, unixfs.THAMTShard:
		if err := r.Mkdir(rel, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if fi, err := r.Lstat(rel); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: %w: not a directory", rel, store.ErrExists)
		}
		d.dirs = append(d.dirs, rel)
		return d.addDir(ctx, dag, r, nd, rel)
	case unixfs.TSymlink:
		target, err := store.SymlinkTarget(nd, rel)
		if err != nil {
			return err
		}
		d.links = append(d.links, rel)
		if old, err := r.Readlink(rel); err == nil && old == target {
			return nil // left by an interrupted fetch
		}
		return r.Symlink(target, rel)
	case unixfs.TFile, unixfs.TRaw:
		size, ok := ufs.FileSize(nd)
		if !ok {
			return fmt.Errorf("%s: %w: not a file", rel, errBadFileDAG)
		}
		return d.addFile(ctx, dag, nd.Cid(), nd, size, rel)
	default:
		return fmt.Errorf("%s: unsupported UnixFS type %s", rel, kind)
	}
}

// addFile opens a file sink for the file root of size bytes at rel and
// feeds it the file's inner nodes from nd down (nil: root is a leaf),
// which are local, so it knows where each leaf goes.
func (d *dirSink) addFile(ctx context.Context, dag ipld.DAGService, root cid.Cid, nd ipld.Node, size uint64, rel string) error {
	if len(d.files) >= maxDirSinkFiles {
		return errTooManyFiles
	}
	path := filepath.Join(d.tmp, rel)
	partial := store.PartialPath(path)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		// Completed by an interrupted fetch: a partial file again. Its
		// leaves may be recorded under its final name already (finish
		// got that far); out itself does not exist yet.
		if d.st != nil {
			for _, from := range []string{path, filepath.Join(d.out, rel)} {
				if _, err := d.st.MoveFileRefs(ctx, from, partial); err != nil {
					return err
				}
			}
		}
		if err := os.Rename(path, partial); err != nil {
			return err
		}
	}
	s, err := createFileSink(partial, root, size, d.st)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	s.refsAt, s.kick = filepath.Join(d.out, rel), d.kick
	d.files = append(d.files, dirFile{sink: s, path: path})
	if nd == nil {
		d.byLeaf[root] = appendOnce(d.byLeaf[root], s)
		return nil
	}
	queue := []ipld.Node{nd}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if err := s.put(n); err != nil {
			return err
		}
		for _, l := range n.Links() {
			if l.Cid.Prefix().Codec == cid.Raw {
				d.byLeaf[l.Cid] = appendOnce(d.byLeaf[l.Cid], s)
				continue
			}
			child, err := l.GetNode(ctx, dag)
			if err != nil {
				return err
			}
			queue = append(queue, child)
		}
	}
	return nil
}

// appendOnce appends s to sinks unless it is there.
func appendOnce(sinks []*fileSink, s *fileSink) []*fileSink {
	for _, x := range sinks {
		if x == s {
			return sinks
		}
	}
	return append(sinks, s)
}

// put writes the leaf nd into every file that holds it. Inner nodes went
// to the files when the sink was built.
func (d *dirSink) put(nd ipld.Node) error {
	for _, s := range d.byLeaf[nd.Cid()] {
		if err := s.put(nd); err != nil {
			return err
		}
	}
	return nil
}

// putHeld writes the leaf nd into every file that holds it, each recording
// it as held there (the last one's record stands).
func (d *dirSink) putHeld(ctx context.Context, nd ipld.Node) error {
	sinks := d.byLeaf[nd.Cid()]
	if len(sinks) == 0 {
		return d.st.Blockstore().Put(ctx, nd)
	}
	for _, s := range sinks {
		if err := s.putHeld(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// holdsLeaves reports whether leaves are kept in the output alone.
func (d *dirSink) holdsLeaves() bool { return d.st != nil }

// finish completes every file (its held leaves pointed at their final
// names under out: until the rename a read of one fails cleanly), checks
// the symlinks, and renames the partial directory to out.
func (d *dirSink) finish(ctx context.Context, out string) error {
	for _, f := range d.files {
		if err := f.sink.finish(ctx, f.path); err != nil {
			return err
		}
	}
	if err := store.CheckLinks(d.tmp, d.links); err != nil {
		return err
	}
	for _, rel := range append(d.dirs, ".") {
		if err := fsutil.SyncDir(filepath.Join(d.tmp, rel)); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%w: %s", store.ErrExists, out)
	}
	if err := os.Rename(d.tmp, out); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(out))
}

// abort closes the files. It keeps the partial directory for a later
// fetch to resume from when keep is set and the store may record leaves
// as held in it; otherwise it removes it.
func (d *dirSink) abort(keep bool) {
	held := false
	for _, f := range d.files {
		f.sink.abort(keep)
		held = held || len(f.sink.held) > 0 || f.sink.reused
	}
	if keep && held {
		return
	}
	os.RemoveAll(d.tmp)
}
