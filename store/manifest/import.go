package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/chunks"
	"github.com/allmende/allmende/store/format"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// ErrBadInput marks import errors caused by the input (a missing folder, a
// malformed header, a symlink leaving the tree).
var ErrBadInput = store.ErrBadInput

// ImportOptions say what is imported and how it is named.
type ImportOptions struct {
	Kind, Name, Revision, License, Source string
	// Commit, if set, is kept (a Hugging Face commit); otherwise derived.
	Commit string
	// Boundary is the directory symlinks must stay inside (default: the
	// imported directory itself).
	Boundary string
	// ETag, if set, names the blob a file's real path is stored under in
	// a Hugging Face cache: a 64-hex sha256 (LFS) or 40-hex blob sha1.
	// Import checks the content against it.
	ETag func(realPath string) string
	// Force imports files whose safetensors/GGUF header is malformed.
	Force bool
	// NoCopy stores leaf blocks as references to the files (boxo
	// filestore, see store.newFilestore) instead of copying them; dag
	// must be backed by the store for that to take effect.
	NoCopy bool
	// Progress, if set, is called with the file bytes read.
	Progress func(n int64)
	// Verified, if set, is called for each file imported with NoCopy once
	// its content was read and hashed, with the root of its DAG and the
	// file's state from before the read; store.Store.MarkVerified keeps
	// it, so the file can be served as it lies on disk while unchanged.
	Verified func(ctx context.Context, root cid.Cid, before store.FileState)
}

// Import reads every file below dir once, building its UnixFS DAG in dag
// while hashing it (sha256, and git blob sha1 for non-LFS files), checks
// safetensors and GGUF headers, and returns the manifest with the
// directory's root CID. Symlinks are followed when they resolve inside the
// boundary, following every link in their chain, and refused with
// ErrBadInput naming the link otherwise.
func Import(ctx context.Context, dag ipld.DAGService, dir string, opts ImportOptions) (*Manifest, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(dir)
	if err != nil || !info.IsDir() {
		return nil, fmt.Errorf("import %s: %w: not a directory", dir, ErrBadInput)
	}
	if opts.Boundary == "" {
		opts.Boundary = dir
	}
	if opts.Kind == "" {
		opts.Kind = KindModel
	}
	if opts.Revision == "" {
		opts.Revision = "main"
	}
	m := &Manifest{Version: Version, Kind: opts.Kind, Name: opts.Name, Revision: opts.Revision,
		License: opts.License, Source: opts.Source, Commit: strings.Repeat("0", 40), Root: "bafkqaaa"}
	buf := ipld.NewBufferedDAG(ctx, dag)
	im := &importer{dag: buf, direct: dag, opts: opts, m: m, open: map[string]bool{}}
	root, err := im.dir(ctx, dir, "")
	if err != nil {
		return nil, err
	}
	if err := buf.Commit(); err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	m.Root = root.Cid().String()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("import %s: %w: %w", dir, ErrBadInput, err)
	}
	m.Commit = opts.Commit
	if m.Commit == "" {
		if m.Commit, err = m.ComputeCommit(); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("import %s: %w: %w", dir, ErrBadInput, err)
	}
	return m, nil
}

type importer struct {
	dag ipld.DAGService
	// direct is dag unbuffered: files imported in place add their nodes
	// through it, so a leaf is stored when Add returns and its chunk can
	// be reused (see chunks.Reader).
	direct ipld.DAGService
	opts   ImportOptions
	m      *Manifest
	// open are the real directories being imported, the top one down to
	// the current one: a link to one of them is a loop.
	open map[string]bool
}

func (im *importer) dir(ctx context.Context, path, rel string) (ipld.Node, error) {
	im.open[path] = true
	defer delete(im.open, path)
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	d, err := ufs.NewDirectory(im.dag)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		child, childRel := filepath.Join(path, e.Name()), joinRel(rel, e.Name())
		nd, err := im.entry(ctx, child, childRel)
		if err != nil {
			return nil, err
		}
		if err := d.AddChild(ctx, e.Name(), nd); err != nil {
			return nil, fmt.Errorf("import %s: %w", child, err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, im.dag.Add(ctx, nd)
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// entry imports one directory entry, following a symlink whose chain stays
// inside the boundary (see fsutil.ResolveInside); a directory reached
// through a link is read at its real place, so links below it resolve
// from there.
func (im *importer) entry(ctx context.Context, path, rel string) (ipld.Node, error) {
	if err := ValidatePath(rel); err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrBadInput, err)
	}
	real, err := fsutil.ResolveInside(im.opts.Boundary, path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	info, err := os.Lstat(real)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w: %v", path, ErrBadInput, err)
	}
	switch {
	case info.IsDir() && im.open[real]:
		return nil, fmt.Errorf("import: symlink %s: %w: it leads back to %s, a directory it is in (a loop)", path, ErrBadInput, real)
	case info.IsDir():
		return im.dir(ctx, real, rel)
	case info.Mode().IsRegular():
		return im.file(ctx, real, rel, info.Size())
	}
	return nil, fmt.Errorf("import %s: %w: unsupported file type %s", path, ErrBadInput, info.Mode().Type())
}

// file imports one regular file in a single read, hashing as it chunks.
func (im *importer) file(ctx context.Context, real, rel string, size int64) (ipld.Node, error) {
	etag := ""
	if im.opts.ETag != nil {
		etag = im.opts.ETag(real)
	}
	wantSHA1 := !IsLFS(rel, size)
	if etag != "" {
		wantSHA1 = len(etag) == 40
	}
	f, err := fsutil.OpenNoFollow(real, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", real, err)
	}
	defer f.Close()
	before, stateErr := store.FileStateOf(real, f)
	s256 := sha256.New()
	hashes := []io.Writer{s256}
	var s1 hash.Hash
	if wantSHA1 {
		s1 = NewBlobHash(uint64(size))
		hashes = append(hashes, s1)
	}
	nd, n, err := im.build(real, f, io.MultiWriter(hashes...))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", real, err)
	}
	if n != size {
		return nil, fmt.Errorf("import %s: file changed while read (%d bytes, expected %d)", real, n, size)
	}
	fe := File{Path: rel, Size: uint64(size), SHA256: hex.EncodeToString(s256.Sum(nil)), CID: nd.Cid().String()}
	if s1 != nil {
		fe.BlobSHA1 = hex.EncodeToString(s1.Sum(nil))
	}
	if etag != "" && etag != fe.ETag() {
		return nil, fmt.Errorf("import %s: %w: content does not match its blob name %s", real, ErrBadInput, etag)
	}
	if fe.Header, err = im.header(f, rel, size); err != nil {
		return nil, err
	}
	if im.opts.NoCopy && im.opts.Verified != nil && stateErr == nil {
		im.opts.Verified(ctx, nd.Cid(), before)
	}
	im.m.Files = append(im.m.Files, fe)
	return nd, nil
}

// build chunks f, open at real, into a UnixFS DAG, as store.BuildFile
// does, with leaves kept by reference under NoCopy, while hashing its bytes
// into hashes. It returns the root and how many bytes it read.
func (im *importer) build(real string, f *os.File, hashes io.Writer) (ipld.Node, int64, error) {
	var reader io.Reader = f
	if im.opts.NoCopy {
		st, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		if reader, err = files.NewReaderPathFile(real, io.NopCloser(f), st); err != nil {
			return nil, 0, err
		}
	}
	sink := func(_ int64, b []byte) error {
		hashes.Write(b) // hash.Hash never fails
		return nil
	}
	dag := im.dag
	if im.opts.NoCopy { // leaves stored as Add returns, so chunks can be reused
		dag = im.direct
	}
	cr := chunks.NewReader(f, sink, chunks.Options{Reader: reader, Progress: im.opts.Progress, Recycle: im.opts.NoCopy})
	nd, err := store.BuildChunks(dag, cr, im.opts.NoCopy)
	n, _ := cr.Close()
	return nd, n, err
}

// header checks a safetensors or GGUF file's header and records its span.
func (im *importer) header(f *os.File, rel string, size int64) (*Header, error) {
	kind := format.Detect(rel)
	if kind == "" {
		return nil, nil
	}
	info, err := format.Parse(kind, f, size)
	if err != nil {
		if im.opts.Force {
			return nil, nil
		}
		return nil, fmt.Errorf("import %s: %w: %w (use --force to import anyway)", rel, ErrBadInput, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, int64(info.HeaderSize))); err != nil {
		return nil, fmt.Errorf("import %s: %w", rel, err)
	}
	return &Header{Format: kind, Size: info.HeaderSize, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// FileSource is one file ImportFiles imports: its path in the model and
// the file it is read from.
type FileSource struct {
	// Path is the file's path in the model.
	Path string
	// Real is the absolute path of the file on disk; it must be a regular
	// file, not a symlink.
	Real string
	// SHA256, if set, is the sha256 the content must have (ErrBadInput
	// otherwise).
	SHA256 string
	// Copy stores the content even under opts.NoCopy: for small files
	// that their owner rewrites in place.
	Copy bool
}

// ImportFiles imports the given files as one model, as Import does a
// folder: each read once, hashed and checked, its DAG built in dag (by
// reference under opts.NoCopy, unless the file says Copy), and the files
// put in one directory DAG by their paths.
func ImportFiles(ctx context.Context, dag ipld.DAGService, files []FileSource, opts ImportOptions) (*Manifest, error) {
	if opts.Kind == "" {
		opts.Kind = KindModel
	}
	want := map[string]string{}
	for _, f := range files {
		want[f.Real] = f.SHA256
	}
	opts.ETag = func(real string) string { return want[real] }
	m := &Manifest{Version: Version, Kind: opts.Kind, Name: opts.Name, Revision: opts.Revision,
		License: opts.License, Source: opts.Source}
	entries := make([]ufs.Entry, 0, len(files))
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := ValidatePath(f.Path); err != nil {
			return nil, fmt.Errorf("import: %w: %w", ErrBadInput, err)
		}
		info, err := os.Lstat(f.Real)
		if err != nil || !info.Mode().IsRegular() {
			return nil, fmt.Errorf("import %s: %w: not a regular file", f.Real, ErrBadInput)
		}
		o := opts
		o.NoCopy = opts.NoCopy && !f.Copy
		buf := ipld.NewBufferedDAG(ctx, dag)
		im := &importer{dag: buf, direct: dag, opts: o, m: m, open: map[string]bool{}}
		nd, err := im.file(ctx, f.Real, f.Path, info.Size())
		if err != nil {
			return nil, err
		}
		if err := buf.Commit(); err != nil {
			return nil, fmt.Errorf("import %s: %w", f.Real, err)
		}
		entries = append(entries, ufs.Entry{Path: f.Path, CID: nd.Cid()})
	}
	root, err := ufs.BuildDirectory(ctx, dag, entries)
	if err != nil {
		return nil, err
	}
	m.Root = root.String()
	if m.Commit, err = m.ComputeCommit(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrBadInput, err)
	}
	return m, nil
}
