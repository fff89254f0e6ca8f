package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// ErrExists means the destination of an export already exists.
var ErrExists = errors.New("destination exists")

// PartialPath is where an export to dest is assembled before it is renamed
// to dest. It is fixed per destination, so an interrupted export leaves at
// most one such entry, which the next export to dest replaces.
func PartialPath(dest string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".allmende-partial")
}

// Export writes the UnixFS file or directory root, read through dag, to
// dest. The result appears at dest whole or not at all: it is written under
// PartialPath(dest), synced, and renamed. Entry names are checked so that
// nothing is written outside dest.
func Export(ctx context.Context, dag ipld.DAGService, root cid.Cid, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("export to %s: %w: remove it or choose another output path", dest, ErrExists)
	}
	tmp := PartialPath(dest)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("export to %s: remove stale partial output: %w", dest, err)
	}
	nd, err := dag.Get(ctx, root)
	if err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	ex := &exporter{dag: dag, root: tmp}
	if err := ex.write(ctx, nd, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export %s to %s: %w", root, dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export %s to %s: %w", root, dest, err)
	}
	return SyncDir(filepath.Dir(dest))
}

type exporter struct {
	dag  ipld.DAGService
	root string
}

func (ex *exporter) write(ctx context.Context, nd ipld.Node, path string) error {
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		return ex.writeFile(ctx, nd, path)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return fmt.Errorf("%s: not a UnixFS node: %w", path, err)
	}
	switch fsn.Type() {
	case unixfs.TFile, unixfs.TRaw:
		return ex.writeFile(ctx, nd, path)
	case unixfs.TDirectory, unixfs.THAMTShard:
		return ex.writeDir(ctx, nd, path)
	case unixfs.TSymlink:
		target := string(fsn.Data())
		if !symlinkStaysInside(ex.root, path, target) {
			return fmt.Errorf("%s: refusing symlink to %q outside the output", path, target)
		}
		return os.Symlink(target, path)
	default:
		return fmt.Errorf("%s: unsupported UnixFS type %s", path, fsn.Type())
	}
}

func (ex *exporter) writeFile(ctx context.Context, nd ipld.Node, path string) error {
	r, err := uio.NewDagReader(ctx, nd, ex.dag)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := r.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (ex *exporter) writeDir(ctx context.Context, nd ipld.Node, path string) error {
	dir, err := uio.NewDirectoryFromNode(ex.dag, nd)
	if err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	err = dir.ForEachLink(ctx, func(l *ipld.Link) error {
		if err := CheckEntryName(l.Name); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		child, err := l.GetNode(ctx, ex.dag)
		if err != nil {
			return err
		}
		return ex.write(ctx, child, filepath.Join(path, l.Name))
	})
	if err != nil {
		return err
	}
	return SyncDir(path)
}

// CheckEntryName refuses directory entry names that could write outside
// their directory or that no file system can hold.
func CheckEntryName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("%w: invalid entry name %q", fs.ErrInvalid, name)
	}
	return nil
}
