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

	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
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
// PartialPath(dest), synced, and renamed. Entry names are checked, and a
// directory is written through an os.Root, so that nothing is written
// outside dest; a symlink in it that resolves outside dest (following the
// links in its chain, see fsutil.ResolveInside) fails the export with ErrBadInput.
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
	if err := exportTo(ctx, dag, nd, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export %s to %s: %w", root, dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export %s to %s: %w", root, dest, err)
	}
	return fsutil.SyncDir(filepath.Dir(dest))
}

// WriteNew writes a new file dest with write, whole or not at all, as
// Export does: under PartialPath(dest), synced, and renamed to dest unless
// something appeared at dest meanwhile (ErrExists). On any failure the
// partial file is removed; a full disk is ErrNoSpace.
func WriteNew(dest string, write func(io.Writer) error) error {
	tmp := PartialPath(dest)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if _, lerr := os.Lstat(dest); err == nil && lerr == nil {
		err = fmt.Errorf("%w: %s appeared meanwhile", ErrExists, dest)
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
		if fsutil.IsDiskFull(err) {
			err = fmt.Errorf("%w: %v", ErrNoSpace, err)
		}
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dest))
}

// exportTo writes nd at tmp: a file directly, a directory through an
// os.Root opened on it, whose symlinks are checked once all are written
// (a link may lead through links written after it).
func exportTo(ctx context.Context, dag ipld.DAGService, nd ipld.Node, tmp string) error {
	kind, err := ufs.Type(nd)
	if err != nil {
		return err
	}
	switch kind {
	case unixfs.TDirectory, unixfs.THAMTShard:
	case unixfs.TSymlink:
		return fmt.Errorf("%w: the root is a symlink, which would point outside the output", ErrBadInput)
	default:
		f, err := fsutil.OpenNoFollow(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		return writeFileTo(ctx, dag, nd, f)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	r, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer r.Close()
	ex := &exporter{dag: dag, root: r}
	if err := ex.writeDir(ctx, nd, "."); err != nil {
		return err
	}
	return CheckLinks(tmp, ex.links)
}

// CheckLinks refuses the symlinks links (relative to dir, all written) if
// one resolves outside dir, following the links in its chain (a link may
// lead through links written after it).
func CheckLinks(dir string, links []string) error {
	for _, l := range links {
		if _, err := fsutil.ResolveInside(dir, filepath.Join(dir, l)); err != nil {
			target, _ := os.Readlink(filepath.Join(dir, l))
			return fmt.Errorf("symlink %s -> %s: %w: %w the output, following the links in its chain", l, target, ErrBadInput, ErrLinkEscapes)
		}
	}
	return nil
}

// exporter writes a directory tree under root; links collects the
// symlinks written, relative to root.
type exporter struct {
	dag   ipld.DAGService
	root  *os.Root
	links []string
}

func (ex *exporter) write(ctx context.Context, nd ipld.Node, rel string) error {
	kind, err := ufs.Type(nd)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	switch kind {
	case unixfs.TFile, unixfs.TRaw:
		f, err := ex.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		return writeFileTo(ctx, ex.dag, nd, f)
	case unixfs.TDirectory, unixfs.THAMTShard:
		if err := ex.root.Mkdir(rel, 0o755); err != nil {
			return err
		}
		return ex.writeDir(ctx, nd, rel)
	case unixfs.TSymlink:
		target, err := SymlinkTarget(nd, rel)
		if err != nil {
			return err
		}
		ex.links = append(ex.links, rel)
		return ex.root.Symlink(target, rel)
	default:
		return fmt.Errorf("%s: unsupported UnixFS type %s", rel, kind)
	}
}

// SymlinkTarget returns the target of the UnixFS symlink nd, to be written
// at rel inside an output; a target that is absolute or leaves the output
// is ErrLinkEscapes.
func SymlinkTarget(nd ipld.Node, rel string) (string, error) {
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		return "", fmt.Errorf("symlink %s: %w: not a UnixFS node", rel, ErrBadInput)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return "", fmt.Errorf("symlink %s: %w: %v", rel, ErrBadInput, err)
	}
	target := string(fsn.Data())
	if filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(rel), target)) {
		return "", fmt.Errorf("symlink %s -> %s: %w: %w the output", rel, target, ErrBadInput, ErrLinkEscapes)
	}
	return target, nil
}

// writeFileTo writes the UnixFS file nd into f, syncs and closes it.
func writeFileTo(ctx context.Context, dag ipld.DAGService, nd ipld.Node, f *os.File) error {
	r, err := ufs.OpenNode(ctx, nd, dag)
	if err != nil {
		f.Close()
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

// writeDir writes the entries of the directory nd into the existing
// directory rel and syncs it.
func (ex *exporter) writeDir(ctx context.Context, nd ipld.Node, rel string) error {
	dir, err := uio.NewDirectoryFromNode(ex.dag, nd)
	if err != nil {
		return err
	}
	err = dir.ForEachLink(ctx, func(l *ipld.Link) error {
		if err := CheckEntryName(l.Name); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		child, err := l.GetNode(ctx, ex.dag)
		if err != nil {
			return err
		}
		return ex.write(ctx, child, filepath.Join(rel, l.Name))
	})
	if err != nil {
		return err
	}
	d, err := ex.root.Open(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", rel, err)
	}
	return nil
}

// CheckEntryName refuses directory entry names that could write outside
// their directory or that no file system can hold.
func CheckEntryName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("%w: invalid entry name %q", fs.ErrInvalid, name)
	}
	return nil
}
