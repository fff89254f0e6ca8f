package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/allmende/allmende/store/chunks"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	ipld "github.com/ipfs/go-ipld-format"
)

// Import settings of the unixfs-v1-2025 profile (IPIP-499).
const (
	// ChunkSize is the size of a file's leaf blocks.
	ChunkSize = chunks.Size
	// LinksPerNode is the widest a file's internal DAG node gets.
	LinksPerNode = 1024
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Progress, if set, is called with the number of file bytes read after
	// each chunk.
	Progress func(n int64)
}

// Import reads the file or directory at path into dag as a UnixFS DAG and
// returns its root. Hidden files are included. Symbolic links are kept as
// UnixFS symlinks (not followed) when they resolve inside the imported tree,
// following the links in their chain (see fsutil.ResolveInside), and refused with
// ErrBadInput otherwise.
func Import(ctx context.Context, dag ipld.DAGService, path string, opts ImportOptions) (ipld.Node, error) {
	return importInto(ctx, dag, path, opts, nil)
}

// importInto is Import; with copies set, files of more than one leaf are
// kept as whole copies in that store (Store.Add).
func importInto(ctx context.Context, dag ipld.DAGService, path string, opts ImportOptions, copies *Store) (ipld.Node, error) {
	info, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("import %s: %w: no such file or directory", path, ErrBadInput)
		}
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	buf := ipld.NewBufferedDAG(ctx, dag)
	im := &importer{dag: buf, root: root, progress: opts.Progress, copies: copies}
	nd, err := im.importPath(ctx, root, info)
	if err != nil {
		return nil, err
	}
	if err := buf.Commit(); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return nd, nil
}

type importer struct {
	dag      ipld.DAGService
	root     string
	progress func(int64)
	copies   *Store // nil: every block goes to dag
}

func (im *importer) importPath(ctx context.Context, path string, info fs.FileInfo) (ipld.Node, error) {
	switch mode := info.Mode(); {
	case mode.IsRegular():
		return im.importFile(ctx, path)
	case mode.IsDir():
		return im.importDir(ctx, path)
	case mode&fs.ModeSymlink != 0:
		return im.importSymlink(path)
	default:
		return nil, fmt.Errorf("import %s: %w: unsupported file type %s", path, ErrBadInput, mode.Type())
	}
}

func (im *importer) importFile(ctx context.Context, path string) (ipld.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	if im.copies != nil {
		if fi, err := f.Stat(); err == nil && fi.Size() > ChunkSize {
			nd, err := im.copies.copyFile(ctx, f, fi, im.progress)
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", path, err)
			}
			return nd, nil
		}
	}
	var r io.Reader = f
	if im.progress != nil {
		r = &progressReader{r: f, report: im.progress}
	}
	nd, err := BuildFile(ctx, im.dag, r)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return nd, nil
}

// BuildFile chunks r into a balanced UnixFS file DAG in dag, following the
// unixfs-v1-2025 profile, and returns its root.
func BuildFile(ctx context.Context, dag ipld.DAGService, r io.Reader) (ipld.Node, error) {
	return BuildChunks(dag, chunker.NewSizeSplitter(r, ChunkSize), false)
}

// BuildChunks is BuildFile for a caller that chunks the file itself, in
// chunks of ChunkSize. With noCopy, leaves are kept by reference to the
// file (spl.Reader() must be a files.FileInfo naming it).
func BuildChunks(dag ipld.DAGService, spl chunker.Splitter, noCopy bool) (ipld.Node, error) {
	params := helpers.DagBuilderParams{
		Dagserv:    dag,
		Maxlinks:   LinksPerNode,
		RawLeaves:  true,
		CidBuilder: uio.UnixFS_v1_2025.CidBuilder(),
		NoCopy:     noCopy,
	}
	db, err := params.New(spl)
	if err != nil {
		return nil, err
	}
	return balanced.Layout(db)
}

func (im *importer) importDir(ctx context.Context, path string) (ipld.Node, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	dir, err := ufs.NewDirectory(im.dag)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		child := filepath.Join(path, e.Name())
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", child, err)
		}
		nd, err := im.importPath(ctx, child, info)
		if err != nil {
			return nil, err
		}
		if err := dir.AddChild(ctx, e.Name(), nd); err != nil {
			return nil, fmt.Errorf("import %s: %w", child, err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	if err := im.dag.Add(ctx, nd); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return nd, nil
}

func (im *importer) importSymlink(path string) (ipld.Node, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	if path == im.root || filepath.IsAbs(target) {
		return nil, fmt.Errorf("import: symlink %s -> %s: %w: %w %s (it must be relative, inside the tree)", path, target, ErrBadInput, ErrLinkEscapes, im.root)
	}
	if _, err := fsutil.ResolveInside(im.root, path); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	data, err := unixfs.SymlinkData(target)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	nd := merkledag.NodeWithData(data)
	if err := nd.SetCidBuilder(uio.UnixFS_v1_2025.CidBuilder()); err != nil {
		return nil, err
	}
	if err := im.dag.Add(context.Background(), nd); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return nd, nil
}

type progressReader struct {
	r      io.Reader
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.report(int64(n))
	}
	return n, err
}
