// Package ufs holds allmende's UnixFS helpers, written once: what a node is
// (a file, a directory), a file's size, its children, reading a file DAG
// (as a seekable stream, or at any offset fetching only the nodes on the
// path to the bytes), building directories under the unixfs-v1-2025
// profile, and walking the files of a directory tree.
//
// It works on any ipld.DAGService or NodeGetter: the store's local DAG, or
// one that fetches from the network. It knows nothing of where blocks live.
package ufs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// MaxDepth bounds how deep ReaderAt descends a file DAG for a byte range.
const MaxDepth = 16

// Type returns nd's UnixFS type: TRaw for a raw leaf, the node's own type
// for a dag-pb node, an error for anything else.
func Type(nd ipld.Node) (unixfspb.Data_DataType, error) {
	switch n := nd.(type) {
	case *merkledag.RawNode:
		return unixfs.TRaw, nil
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(n.Data())
		if err != nil {
			return 0, fmt.Errorf("%s: not a UnixFS node: %w", nd.Cid(), err)
		}
		return fsn.Type(), nil
	}
	return 0, fmt.Errorf("%s: not a UnixFS node", nd.Cid())
}

// FileSize returns the content size of nd if it is a UnixFS file (or a raw
// leaf); ok is false for anything else, e.g. a directory.
func FileSize(nd ipld.Node) (size uint64, ok bool) {
	switch n := nd.(type) {
	case *merkledag.RawNode:
		return uint64(len(n.RawData())), true
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(n.Data())
		if err != nil || (fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw) {
			return 0, false
		}
		return fsn.FileSize(), true
	}
	return 0, false
}

// IsDir reports whether nd is a UnixFS directory or HAMT shard.
func IsDir(nd ipld.Node) bool {
	t, err := Type(nd)
	return err == nil && (t == unixfs.TDirectory || t == unixfs.THAMTShard)
}

// Children returns the CIDs nd links to, in order.
func Children(nd ipld.Node) []cid.Cid {
	links := nd.Links()
	out := make([]cid.Cid, len(links))
	for i, l := range links {
		out[i] = l.Cid
	}
	return out
}

// Open returns a seekable reader over the UnixFS file c in dag (boxo's
// DagReader: it also writes itself out with WriteTo, prefetching).
func Open(ctx context.Context, dag ipld.DAGService, c cid.Cid) (uio.DagReader, error) {
	nd, err := dag.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return OpenNode(ctx, nd, dag)
}

// OpenNode returns a seekable reader over the UnixFS file whose root nd
// the caller already holds, reading the rest through dag.
func OpenNode(ctx context.Context, nd ipld.Node, dag ipld.DAGService) (uio.DagReader, error) {
	return uio.NewDagReader(ctx, nd, dag)
}

// NewDirectory returns an empty directory builder that follows the
// unixfs-v1-2025 profile (CIDv1, HAMT above its size threshold).
func NewDirectory(dag ipld.DAGService) (uio.Directory, error) {
	return uio.NewDirectory(dag, uio.WithCidBuilder(uio.UnixFS_v1_2025.CidBuilder()))
}

// Entry is a file to put in a directory tree: its slash-separated path and
// the CID of its content, which must be in the DAG.
type Entry struct {
	Path string
	CID  cid.Cid
}

// BuildDirectory assembles a UnixFS directory tree over files (their
// nodes read from dag, the directories added to it) and returns its root.
// Entries are added in name order, so the same files give the same CID.
func BuildDirectory(ctx context.Context, dag ipld.DAGService, files []Entry) (cid.Cid, error) {
	top := newTree()
	for _, f := range files {
		parts := strings.Split(f.Path, "/")
		t := top
		for _, d := range parts[:len(parts)-1] {
			if t.dirs[d] == nil {
				t.dirs[d] = newTree()
			}
			t = t.dirs[d]
		}
		t.files[parts[len(parts)-1]] = f.CID
	}
	nd, err := top.build(ctx, dag)
	if err != nil {
		return cid.Undef, fmt.Errorf("build directory: %w", err)
	}
	return nd.Cid(), nil
}

// tree is a directory being assembled.
type tree struct {
	files map[string]cid.Cid
	dirs  map[string]*tree
}

func newTree() *tree { return &tree{files: map[string]cid.Cid{}, dirs: map[string]*tree{}} }

func (t *tree) build(ctx context.Context, dag ipld.DAGService) (ipld.Node, error) {
	dir, err := NewDirectory(dag)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(t.files)+len(t.dirs))
	for name := range t.files {
		names = append(names, name)
	}
	for name := range t.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var child ipld.Node
		if sub, ok := t.dirs[name]; ok {
			child, err = sub.build(ctx, dag)
		} else {
			child, err = dag.Get(ctx, t.files[name])
		}
		if err != nil {
			return nil, err
		}
		if err := dir.AddChild(ctx, name, child); err != nil {
			return nil, err
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, dag.Add(ctx, nd)
}

// WalkFiles calls fn with the CID of every file below the directory root,
// at any depth (nothing if root is not a directory). Directory and HAMT
// shard nodes themselves are not reported.
func WalkFiles(ctx context.Context, dag ipld.DAGService, root cid.Cid, fn func(cid.Cid)) error {
	nd, err := dag.Get(ctx, root)
	if err != nil {
		return err
	}
	if !IsDir(nd) {
		return nil
	}
	dir, err := uio.NewDirectoryFromNode(dag, nd)
	if err != nil {
		return err
	}
	return dir.ForEachLink(ctx, func(l *ipld.Link) error {
		child, err := dag.Get(ctx, l.Cid)
		if err != nil {
			return err
		}
		if IsDir(child) {
			return WalkFiles(ctx, dag, l.Cid, fn)
		}
		fn(l.Cid)
		return nil
	})
}

// ReaderAt reads a UnixFS file DAG at any offset, getting only the nodes
// on the path to the bytes asked for (boxo's DagReader prefetches
// siblings, which would fetch megabytes for a header).
type ReaderAt struct {
	ctx  context.Context
	ng   ipld.NodeGetter
	root ipld.Node
	size uint64
}

// NewReaderAt opens the UnixFS file c through ng; reads fetch under ctx.
func NewReaderAt(ctx context.Context, ng ipld.NodeGetter, c cid.Cid) (*ReaderAt, error) {
	root, err := ng.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", c, err)
	}
	size, ok := FileSize(root)
	if !ok {
		return nil, fmt.Errorf("%s is not a UnixFS file", c)
	}
	return &ReaderAt{ctx: ctx, ng: ng, root: root, size: size}, nil
}

// Size is the file's content size.
func (d *ReaderAt) Size() uint64 { return d.size }

// ReadAt implements io.ReaderAt.
func (d *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	for len(p) > 0 {
		if off < 0 || uint64(off) >= d.size {
			return total, io.EOF
		}
		k, err := d.readNode(d.root, p, uint64(off), 0)
		if err != nil {
			return total, err
		}
		if k == 0 {
			return total, io.ErrUnexpectedEOF
		}
		total += k
		p = p[k:]
		off += int64(k)
	}
	return total, nil
}

// readNode copies bytes at off within nd into p from a single leaf.
func (d *ReaderAt) readNode(nd ipld.Node, p []byte, off uint64, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, fmt.Errorf("file DAG deeper than %d", MaxDepth)
	}
	switch nd := nd.(type) {
	case *merkledag.RawNode:
		data := nd.RawData()
		if off >= uint64(len(data)) {
			return 0, nil
		}
		return copy(p, data[off:]), nil
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(nd.Data())
		if err != nil {
			return 0, err
		}
		if data := fsn.Data(); off < uint64(len(data)) {
			return copy(p, data[off:]), nil
		} else {
			off -= uint64(len(data))
		}
		links := nd.Links()
		for i, bs := range fsn.BlockSizes() {
			if off < bs && i < len(links) {
				child, err := links[i].GetNode(d.ctx, d.ng)
				if err != nil {
					return 0, err
				}
				return d.readNode(child, p, off, depth+1)
			}
			off -= bs
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%s is not a UnixFS file node", nd.Cid())
}
