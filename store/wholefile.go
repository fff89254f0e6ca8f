package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/boxo/filestore"
	"github.com/ipfs/boxo/filestore/pb"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"google.golang.org/protobuf/proto"
)

// A file kept with no-copy (imported in place, or written by fetch and
// indexed by reference) holds a root's bytes whole, in order, in one file
// on disk. Reading it through the block store re-hashes every leaf on every
// read; serving it straight from the file (sendfile) is only safe while the
// file is exactly as it was when its content was last verified. The store
// keeps, per root, the state of the file (size, times, inode) at that
// moment; OpenWholeFile hands the file out only while the state still
// matches. A change in place that keeps every one of them (bit rot under
// the file system) is found by `allmende verify`, whose quarantine removes
// the references and so ends the fast path.

// wholeFileNamespace is where verified file states live in the metadata
// datastore, keyed by root CID.
const wholeFileNamespace = "/wholefile"

// Racy windows: a file changed within this long before its state was taken
// may have changed again without its ctime moving (kernels keep file times
// with a coarse clock), so such a state is not trusted. Whole-second
// timestamps (some file systems) need the longer window.
const (
	racyWindow       = 50 * time.Millisecond
	coarseRacyWindow = 2 * time.Second
)

// Errors of OpenWholeFile; the caller reads through the block store then.
var (
	// ErrNotWhole means a root's content is not held whole in one file
	// (it is kept as blocks, spans several files, or its file was found
	// not to match it).
	ErrNotWhole = errors.New("not held whole in one file")
	// ErrUnverified means a root is held whole in one file, but the file
	// is not in a state whose content was verified; VerifyWholeFile can
	// verify it again.
	ErrUnverified = errors.New("file not verified in its current state")
)

// FileState identifies one version of a file: its path and what its stat
// says. Two equal states of one path mean the file was not written, resized
// or replaced in between.
type FileState struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"` // nanoseconds since the epoch
	CTime int64  `json:"ctime"` // nanoseconds since the epoch
	Inode uint64 `json:"inode"`
	Dev   uint64 `json:"dev"`
	// taken is when the state was read; it is not stored.
	taken time.Time
}

// wholeRecord is what the store keeps per root: the file's state when its
// content was last verified, and whether it matched.
type wholeRecord struct {
	State FileState `json:"state"`
	OK    bool      `json:"ok"`
}

// FileStateOf returns the state of f, open for reading at path. Take it
// before reading a file's content to verify it, and hand it to
// MarkVerified afterwards.
func FileStateOf(path string, f *os.File) (FileState, error) {
	fi, err := f.Stat()
	if err != nil {
		return FileState{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return fileState(path, fi)
}

func fileState(path string, fi os.FileInfo) (FileState, error) {
	ino, dev, ctime, ok := fileIdentity(fi)
	if !ok {
		return FileState{}, fmt.Errorf("stat %s: %w: no inode or ctime on this platform", path, ErrUnverified)
	}
	return FileState{Path: path, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), CTime: ctime,
		Inode: ino, Dev: dev, taken: time.Now()}, nil
}

// same reports whether s and o describe the same version of a file.
func (s FileState) same(o FileState) bool {
	return s.Path == o.Path && s.Size == o.Size && s.MTime == o.MTime && s.CTime == o.CTime &&
		s.Inode == o.Inode && s.Dev == o.Dev
}

// racy reports whether the file changed so shortly before s was taken
// that a later change might not show in its ctime.
func (s FileState) racy() bool {
	window := racyWindow
	if s.CTime%int64(time.Second) == 0 && s.MTime%int64(time.Second) == 0 {
		window = coarseRacyWindow
	}
	return s.taken.Sub(time.Unix(0, s.CTime)) < window
}

// MarkVerified records that root's content was read from the file in
// state before (taken with FileStateOf before the read) and matched, so
// OpenWholeFile may hand the file out while it stays in that state. It
// records nothing and returns ErrUnverified if the file changed since
// before, or if before was taken so soon after a change that a further
// change might not show (a racy state); the block store then keeps
// serving the root, re-hashing it.
func (s *Store) MarkVerified(ctx context.Context, root cid.Cid, before FileState) error {
	return s.markWhole(ctx, root, before, true)
}

func (s *Store) markWhole(ctx context.Context, root cid.Cid, before FileState, ok bool) error {
	if ok && before.racy() {
		return fmt.Errorf("mark %s: %w: %s changed just before it was read", root, ErrUnverified, before.Path)
	}
	fi, err := os.Stat(before.Path)
	if err != nil {
		return fmt.Errorf("mark %s: %w", root, err)
	}
	now, err := fileState(before.Path, fi)
	if err != nil {
		return fmt.Errorf("mark %s: %w", root, err)
	}
	if !now.same(before) {
		return fmt.Errorf("mark %s: %w: %s changed while it was read", root, ErrUnverified, before.Path)
	}
	data, err := json.Marshal(wholeRecord{State: before, OK: ok})
	if err != nil {
		return fmt.Errorf("mark %s: %w", root, err)
	}
	if err := s.wholeStates().Put(ctx, datastore.NewKey(root.String()), data); err != nil {
		return fmt.Errorf("mark %s: %w", root, err)
	}
	s.verified.note(ctx, s, root, before, ok)
	return nil
}

func (s *Store) wholeStates() datastore.Datastore {
	return namespace.Wrap(s.meta, datastore.NewKey(wholeFileNamespace))
}

// OpenWholeFile returns, open for reading, the file on disk that holds the
// content of the UnixFS file root whole: every leaf a no-copy reference
// into that one file, in order from offset 0, covering it exactly, and the
// file unchanged since its content was last verified (see MarkVerified).
// Its bytes may then be sent as they are, without re-hashing. It returns
// ErrNotWhole or ErrUnverified (wrapped) when the root must be read
// through the block store instead. The caller closes the file.
func (s *Store) OpenWholeFile(ctx context.Context, root cid.Cid) (*os.File, error) {
	layout, err := s.wholeLayout(ctx, root)
	if err != nil {
		return nil, err
	}
	rec, err := s.wholeRecord(ctx, root)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(layout.path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", root, ErrNotWhole, err)
	}
	now, err := FileStateOf(layout.path, f)
	switch {
	case err != nil:
	case rec == nil || !rec.State.same(now):
		err = fmt.Errorf("open %s: %w: %s", root, ErrUnverified, layout.path)
	case !rec.OK:
		err = fmt.Errorf("open %s: %w: %s does not hold it", root, ErrNotWhole, layout.path)
	case now.Size != layout.size:
		err = fmt.Errorf("open %s: %w: %s has %d bytes, not %d", root, ErrNotWhole, layout.path, now.Size, layout.size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// wholeRecord returns the verified state kept for root, or nil.
func (s *Store) wholeRecord(ctx context.Context, root cid.Cid) (*wholeRecord, error) {
	data, err := s.wholeStates().Get(ctx, datastore.NewKey(root.String()))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file state of %s: %w", root, err)
	}
	var rec wholeRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("file state of %s: %w", root, err)
	}
	return &rec, nil
}

// VerifyWholeFile reads the file that holds root whole (as OpenWholeFile
// requires) once, re-hashes every leaf against root's DAG, and records the
// outcome: OpenWholeFile hands the file out afterwards if it matched, and
// reports ErrNotWhole for this state of the file if it did not (so a
// changed file is not re-read on every request). It returns ErrCorrupt
// (wrapped) for a file that does not match.
func (s *Store) VerifyWholeFile(ctx context.Context, root cid.Cid) error {
	layout, err := s.wholeLayout(ctx, root)
	if err != nil {
		return err
	}
	f, err := os.Open(layout.path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", root, err)
	}
	defer f.Close()
	before, err := FileStateOf(layout.path, f)
	if err != nil {
		return fmt.Errorf("verify %s: %w", root, err)
	}
	bad := checkLeaves(ctx, f, layout.leaves)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := s.markWhole(ctx, root, before, bad == nil && before.Size == layout.size); err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("verify %s: %s: %w", root, layout.path, bad)
	}
	return nil
}

// checkLeaves re-hashes the leaves of a whole file from f.
func checkLeaves(ctx context.Context, f *os.File, leaves []wholeLeaf) error {
	var buf []byte
	for _, l := range leaves {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := readAt(f, int64(l.offset), int(l.size), buf)
		switch {
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: %s: file too short", ErrCorrupt, l.cid)
		case err != nil:
			return err
		}
		buf = b
		if err := checkBlock(l.cid, b); err != nil {
			return err
		}
	}
	return nil
}

// wholeLeaf is one leaf of a file held whole: where its bytes lie.
type wholeLeaf struct {
	cid          cid.Cid
	offset, size uint64
}

// wholeFileLayout is where a file root's leaves lie on disk.
type wholeFileLayout struct {
	path   string
	size   int64
	leaves []wholeLeaf
}

// wholeLayout walks root's DAG (internal nodes from the store; leaves only
// by their no-copy references, without reading them) and checks that the
// leaves cover one file in order from offset 0.
func (s *Store) wholeLayout(ctx context.Context, root cid.Cid) (*wholeFileLayout, error) {
	refs := namespace.Wrap(s.meta, filestore.FilestorePrefix)
	w := &layoutWalker{s: s, refs: refs, layout: &wholeFileLayout{}}
	if err := w.visit(ctx, root); err != nil {
		return nil, fmt.Errorf("layout of %s: %w", root, err)
	}
	return w.layout, nil
}

type layoutWalker struct {
	s      *Store
	refs   datastore.Datastore
	next   uint64 // offset the next leaf must start at
	layout *wholeFileLayout
}

func (w *layoutWalker) visit(ctx context.Context, c cid.Cid) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.Type() == cid.Raw {
		return w.leaf(ctx, c)
	}
	if c.Type() != cid.DagProtobuf {
		return fmt.Errorf("%w: %s is not a UnixFS file node", ErrNotWhole, c)
	}
	nd, err := w.s.dag.Get(ctx, c)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotWhole, err)
	}
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		return fmt.Errorf("%w: %s is not a UnixFS file node", ErrNotWhole, c)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil || (fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw) || len(fsn.Data()) > 0 {
		return fmt.Errorf("%w: %s is not a file node with raw leaves", ErrNotWhole, c)
	}
	start := w.next
	for _, l := range pn.Links() {
		if err := w.visit(ctx, l.Cid); err != nil {
			return err
		}
	}
	if w.next-start != fsn.FileSize() {
		return fmt.Errorf("%w: %s: leaves cover %d bytes, node says %d", ErrNotWhole, c, w.next-start, fsn.FileSize())
	}
	return nil
}

// leaf checks that raw leaf c is referenced at the next offset of the same
// file as the leaves before it.
func (w *layoutWalker) leaf(ctx context.Context, c cid.Cid) error {
	data, err := w.refs.Get(ctx, dshelp.MultihashToDsKey(c.Hash()))
	if err != nil {
		return fmt.Errorf("%w: leaf %s: %w", ErrNotWhole, c, err)
	}
	var obj pb.DataObj
	if err := proto.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("%w: leaf %s: %w", ErrNotWhole, c, err)
	}
	path := refPath(obj.GetFilePath())
	l := w.layout
	switch {
	case obj.GetFilePath() == "" || filestore.IsURL(obj.GetFilePath()):
		return fmt.Errorf("%w: leaf %s is not a file reference", ErrNotWhole, c)
	case l.path != "" && path != l.path:
		return fmt.Errorf("%w: leaves in %s and %s", ErrNotWhole, l.path, path)
	case obj.GetOffset() != w.next:
		return fmt.Errorf("%w: leaf %s at offset %d, expected %d", ErrNotWhole, c, obj.GetOffset(), w.next)
	}
	l.path = path
	l.leaves = append(l.leaves, wholeLeaf{cid: c, offset: w.next, size: obj.GetSize()})
	w.next += obj.GetSize()
	l.size = int64(w.next)
	return nil
}
