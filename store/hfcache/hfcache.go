// Package hfcache owns the Hugging Face cache layout on disk: it recognises
// a cached repository (models--org--name/ with blobs/, snapshots/<commit>/
// and refs/<branch>) for import, and lays out a model described by a
// manifest exactly as huggingface_hub does, so HF_HUB_OFFLINE=1 loads it.
package hfcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
)

// Layout names inside a cache directory.
const (
	blobsDir     = "blobs"
	snapshotsDir = "snapshots"
	refsDir      = "refs"
	// treesDir holds trees/<commit>.json, the listing of a commit's files
	// huggingface_hub (2.x) keeps: get_cached_repo_tree reads it, and an
	// offline snapshot_download checks the snapshot against it.
	treesDir = "trees"
	// treeFormat is the listing's format_version.
	treeFormat = 1
	// MaxRefSize bounds a refs/<branch> file.
	MaxRefSize = 256
)

// ErrNotCache means a directory is not a Hugging Face cache repository.
var ErrNotCache = errors.New("not a Hugging Face cache repository")

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Snapshot is one revision of a cached repository.
type Snapshot struct {
	Kind, Name string
	// Revision is the branch asked for (or the commit, if given one).
	Revision string
	Commit   string
	// RepoDir is models--org--name; Dir is its snapshots/<commit>.
	RepoDir, Dir string
}

// RepoDirName is the cache's directory name for a repository, as
// huggingface_hub's repo_folder_name makes it: the kind's prefix, then the
// name with "/" replaced by "--". It is one-to-one only for valid names
// (manifest.ValidName refuses "--"); Write checks.
func RepoDirName(kind, name string) string {
	prefix := "models--"
	if kind == manifest.KindDataset {
		prefix = "datasets--"
	}
	return prefix + strings.ReplaceAll(name, "/", "--")
}

// DefaultDir is $HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub.
func DefaultDir() (string, error) {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "huggingface", "hub"), nil
}

// Open recognises dir as a cached repository and picks revision (a branch
// in refs/, or a commit in snapshots/; "" means main).
func Open(dir, revision string) (*Snapshot, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(dir)
	var kind, rest string
	switch {
	case strings.HasPrefix(base, "models--"):
		kind, rest = manifest.KindModel, strings.TrimPrefix(base, "models--")
	case strings.HasPrefix(base, "datasets--"):
		kind, rest = manifest.KindDataset, strings.TrimPrefix(base, "datasets--")
	default:
		return nil, ErrNotCache
	}
	if st, err := os.Stat(filepath.Join(dir, snapshotsDir)); err != nil || !st.IsDir() {
		return nil, ErrNotCache
	}
	org, name, ok := strings.Cut(rest, "--")
	if !ok {
		return nil, fmt.Errorf("%w: %s does not name org--name", ErrNotCache, base)
	}
	// A name holds no "--" (manifest.ValidName), so the folder name
	// splits one way only.
	if err := manifest.ValidName(org + "/" + name); err != nil {
		return nil, fmt.Errorf("hf cache %s: %w", base, err)
	}
	s := &Snapshot{Kind: kind, Name: org + "/" + name, Revision: revision, RepoDir: dir}
	if s.Revision == "" {
		s.Revision = "main"
	}
	if s.Commit, err = s.resolve(); err != nil {
		return nil, err
	}
	s.Dir = filepath.Join(dir, snapshotsDir, s.Commit)
	if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("hf cache %s: no snapshot for commit %s", dir, s.Commit)
	}
	return s, nil
}

func (s *Snapshot) resolve() (string, error) {
	if commitRE.MatchString(s.Revision) {
		return s.Revision, nil
	}
	if err := manifest.ValidRevision(s.Revision); err != nil {
		return "", err
	}
	f, err := os.Open(filepath.Join(s.RepoDir, refsDir, filepath.FromSlash(s.Revision)))
	if err != nil {
		return "", fmt.Errorf("hf cache %s: revision %s: %w", s.RepoDir, s.Revision, err)
	}
	defer f.Close()
	buf := make([]byte, MaxRefSize)
	n, _ := f.Read(buf)
	c := strings.TrimSpace(string(buf[:n]))
	if !commitRE.MatchString(c) {
		return "", fmt.Errorf("hf cache %s: refs/%s holds %q, not a commit", s.RepoDir, s.Revision, c)
	}
	return c, nil
}

// ETag returns the blob name of a resolved file path inside the repository
// (its etag), or "" if it is not in blobs/.
func (s *Snapshot) ETag(real string) string {
	blobs := filepath.Join(s.RepoDir, blobsDir)
	if filepath.Dir(real) == blobs {
		return filepath.Base(real)
	}
	if resolved, err := filepath.EvalSymlinks(blobs); err == nil && filepath.Dir(real) == resolved {
		return filepath.Base(real)
	}
	return ""
}

// BlobWriter writes the content of f to the new file at dest (whole and
// verified, or not at all).
type BlobWriter func(f manifest.File, dest string) error

// Write lays m out under cacheDir as the Hugging Face cache does:
// blobs/<etag> (written through write, unless a blob of that name already
// holds exactly that content), snapshots/<commit>/<path> as relative
// symlinks to the blobs, refs/<revision> holding the commit without a
// trailing newline, and trees/<commit>.json listing all of m's files.
// Files listed in m are written only if keep says so (nil keeps all). The
// repository folder is models--org--name, one per
// name: names cannot hold "--" (manifest.ValidName). Directories and links
// are made through an os.Root on it, so nothing is written outside it. It
// returns the snapshot directory.
func Write(cacheDir string, m *manifest.Manifest, keep func(manifest.File) bool, write BlobWriter) (string, error) {
	if err := manifest.ValidName(m.Name); err != nil {
		return "", fmt.Errorf("hf cache: %w", err)
	}
	if !commitRE.MatchString(m.Commit) {
		return "", fmt.Errorf("hf cache: %w: commit %q", manifest.ErrInvalid, m.Commit)
	}
	repo := filepath.Join(cacheDir, RepoDirName(m.Kind, m.Name))
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", fmt.Errorf("hf cache: %w", err)
	}
	root, err := os.OpenRoot(repo)
	if err != nil {
		return "", fmt.Errorf("hf cache: %w", err)
	}
	defer root.Close()
	snap := path.Join(snapshotsDir, m.Commit)
	for _, d := range []string{blobsDir, refsDir, snap} {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("hf cache: %w", err)
		}
	}
	for _, f := range m.Files {
		if keep != nil && !keep(f) {
			continue
		}
		if err := writeFile(root, snap, f, write); err != nil {
			return "", err
		}
	}
	if err := writeTree(root, m); err != nil {
		return "", err
	}
	if m.Revision != m.Commit {
		ref := path.Join(refsDir, m.Revision)
		if err := root.MkdirAll(path.Dir(ref), 0o755); err != nil {
			return "", fmt.Errorf("hf cache: %w", err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(repo, filepath.FromSlash(ref)), []byte(m.Commit), 0o644); err != nil {
			return "", fmt.Errorf("hf cache: %w", err)
		}
	}
	return filepath.Join(repo, filepath.FromSlash(snap)), nil
}

// treeEntry is one file of trees/<commit>.json.
type treeEntry struct {
	Size      uint64  `json:"size"`
	BlobID    string  `json:"blob_id"`
	LFSSHA256 string  `json:"lfs_sha256,omitempty"`
	LFSSize   *uint64 `json:"lfs_size,omitempty"`
}

// writeTree writes trees/<commit>.json listing every file of m (the
// commit's tree, whichever files the snapshot holds), as huggingface_hub
// writes it after listing a repository.
func writeTree(root *os.Root, m *manifest.Manifest) error {
	files := make(map[string]treeEntry, len(m.Files))
	for _, f := range m.Files {
		e := treeEntry{Size: f.Size, BlobID: f.GitOID()}
		if f.LFS() {
			e.LFSSHA256, e.LFSSize = f.SHA256, &f.Size
		}
		files[f.Path] = e
	}
	raw, err := json.MarshalIndent(map[string]any{"format_version": treeFormat, "files": files}, "", "  ")
	if err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	if err := root.MkdirAll(treesDir, 0o755); err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	dest := filepath.Join(root.Name(), treesDir, m.Commit+".json")
	if err := fsutil.WriteFileAtomic(dest, raw, 0o644); err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	return nil
}

func writeFile(root *os.Root, snap string, f manifest.File, write BlobWriter) error {
	if err := manifest.ValidatePath(f.Path); err != nil {
		return err
	}
	blob := path.Join(blobsDir, f.ETag())
	ok, err := blobHolds(root, blob, f)
	if err != nil {
		return fmt.Errorf("hf cache: %s: %w", f.Path, err)
	}
	if !ok {
		if err := root.RemoveAll(blob); err != nil {
			return fmt.Errorf("hf cache: %w", err)
		}
		if err := write(f, filepath.Join(root.Name(), filepath.FromSlash(blob))); err != nil {
			return fmt.Errorf("hf cache: %s: %w", f.Path, err)
		}
	}
	link := path.Join(snap, f.Path)
	if err := root.MkdirAll(path.Dir(link), 0o755); err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	target := LinkTarget(f.Path, f.ETag())
	if cur, err := root.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := root.RemoveAll(link); err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	if err := root.Symlink(target, link); err != nil {
		return fmt.Errorf("hf cache: %w", err)
	}
	return nil
}

// blobHolds reports whether the blob at name (under root) is a regular
// file holding exactly f's content: its size, and its hash re-computed
// (sha256 for an LFS file, else the git blob sha1), as a blob's name
// promises. Anything else (a wrong or truncated blob, a symlink) is to be
// replaced.
func blobHolds(root *os.Root, name string, f manifest.File) (bool, error) {
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() || uint64(st.Size()) != f.Size {
		return false, nil
	}
	r, err := root.Open(name)
	if err != nil {
		return false, nil
	}
	defer r.Close()
	h, want := sha256.New(), f.SHA256
	if !f.LFS() {
		h, want = manifest.NewBlobHash(f.Size), f.BlobSHA1
	}
	if _, err := io.Copy(h, r); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}

// LinkTarget is the relative symlink target of snapshots/<commit>/<path>:
// ../../blobs/<etag> with one more ../ per sub-directory of path.
func LinkTarget(p, etag string) string {
	depth := strings.Count(path.Clean(p), "/")
	return strings.Repeat("../", 2+depth) + blobsDir + "/" + etag
}
