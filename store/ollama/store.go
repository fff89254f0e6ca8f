package ollama

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layout names inside a store.
const (
	manifestsDir = "manifests"
	blobsDir     = "blobs"
	// blobPrefix starts a blob's file name: sha256-<hex>.
	blobPrefix = "sha256-"
	// tmpPrefix starts the temporary files a write leaves while it runs.
	// They live in blobs/, where Ollama removes stray files with names
	// that are no digest, and outside the manifests/*/*/*/* Ollama lists.
	tmpPrefix = ".allmende-"
	// nameDepth is the number of path parts of a manifest below manifests/.
	nameDepth = 4
	dirPerm   = 0o755
	filePerm  = 0o644
)

// ModelsEnv is the variable Ollama reads its store's location from.
const ModelsEnv = "OLLAMA_MODELS"

// Store is an Ollama model store on disk.
type Store struct {
	dir  string
	root *os.Root
}

// DefaultDir is where Ollama keeps its models: $OLLAMA_MODELS, else
// ~/.ollama/models.
func DefaultDir() (string, error) {
	if d := os.Getenv(ModelsEnv); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("ollama store: %w", err)
	}
	return filepath.Join(home, ".ollama", "models"), nil
}

// Open opens the existing store at dir for reading and writing.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("ollama store: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("ollama store: %w", err)
	}
	return &Store{dir: abs, root: root}, nil
}

// Create opens the store at dir, making it and its manifests/ and blobs/
// directories if they are missing.
func Create(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("ollama store: %w", err)
	}
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{manifestsDir, blobsDir} {
		if err := s.root.MkdirAll(d, dirPerm); err != nil {
			s.Close()
			return nil, fmt.Errorf("ollama store: %w", err)
		}
	}
	return s, nil
}

// Close releases the store.
func (s *Store) Close() error { return s.root.Close() }

// Dir is the store's absolute directory.
func (s *Store) Dir() string { return s.dir }

// Model is one model of a store.
type Model struct {
	Name Name
	// Manifest is the manifest file's bytes, exactly.
	Manifest []byte
	// Digest is their sha256 (Ollama shows its first 12 hex digits as the
	// model's ID).
	Digest digest.Digest
	Parsed *Manifest
	// Blobs are the manifest's blobs (config first), each a regular file
	// of the declared size in the store.
	Blobs   []Blob
	ModTime time.Time
}

// Blob is one blob of a model and where it lies.
type Blob struct {
	ocispec.Descriptor
	// Path is the blob file's absolute path.
	Path string
}

// blobName is the slash-separated path of a blob in a store.
func blobName(d digest.Digest) string {
	return blobsDir + "/" + blobPrefix + strings.TrimPrefix(string(d), "sha256:")
}

// BlobPath is the absolute path a blob has in the store (whether it is
// there or not).
func (s *Store) BlobPath(d digest.Digest) (string, error) {
	if err := CheckDigest(d); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(blobName(d))), nil
}

// ManifestPath is the absolute path of model n's manifest file in the
// store (whether it is there or not).
func (s *Store) ManifestPath(n Name) (string, error) {
	if err := n.Validate(); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(n.manifestPath())), nil
}

// Read reads the model n: its manifest and where its blobs lie. It fails
// with ErrNotFound when there is no such manifest, or a blob is missing or
// not of its declared size. Neither the manifest nor a blob may be, or lie
// under, a symlink.
func (s *Store) Read(n Name) (*Model, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	if err := s.noLinks(n.manifestPath()); err != nil {
		return nil, err
	}
	data, mod, err := s.readManifest(n.manifestPath())
	if err != nil {
		return nil, fmt.Errorf("ollama model %s: %w", n, err)
	}
	m := &Model{Name: n, Manifest: data, Digest: digest.SHA256.FromBytes(data), ModTime: mod}
	if m.Parsed, err = ParseManifest(data); err != nil {
		return nil, fmt.Errorf("ollama model %s: %w", n, err)
	}
	for _, d := range m.Parsed.Blobs() {
		if err := s.blobPresent(d); err != nil {
			return nil, fmt.Errorf("ollama model %s: %w", n, err)
		}
		p, _ := s.BlobPath(d.Digest)
		m.Blobs = append(m.Blobs, Blob{Descriptor: d, Path: p})
	}
	return m, nil
}

// noLinks checks that no part of the slash-separated path p (below the
// store) is a symlink, so that reading p reads what the store holds there.
func (s *Store) noLinks(p string) error {
	parts := strings.Split(p, "/")
	for i := range parts {
		st, err := s.root.Lstat(path.Join(parts[:i+1]...))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", p, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("ollama store: %w", err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s is a symlink; links in an Ollama store are not followed", ErrInvalid, path.Join(parts[:i+1]...))
		}
	}
	return nil
}

// readManifest reads a manifest file: a regular file (never through a
// symlink at its own name) of at most MaxManifestBytes.
func (s *Store) readManifest(name string) ([]byte, time.Time, error) {
	f, err := s.root.OpenFile(name, os.O_RDONLY|oNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() || st.Size() > MaxManifestBytes {
		return nil, time.Time{}, fmt.Errorf("%w manifest: not a regular file of at most %d bytes", ErrInvalid, MaxManifestBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(data) > MaxManifestBytes {
		return nil, time.Time{}, fmt.Errorf("%w manifest: more than %d bytes", ErrInvalid, MaxManifestBytes)
	}
	return data, st.ModTime(), nil
}

// blobPresent checks that a blob is a regular file (not a symlink) of its
// declared size. It does not hash it: HasBlob does.
func (s *Store) blobPresent(d ocispec.Descriptor) error {
	if err := CheckDigest(d.Digest); err != nil {
		return err
	}
	st, err := s.root.Lstat(blobName(d.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() != d.Size {
		return fmt.Errorf("blob %s: %w: not a regular file of %d bytes", d.Digest, ErrNotFound, d.Size)
	}
	return nil
}

// List reads every model of the store: each manifests/<host>/<namespace>/
// <model>/<tag> whose name is valid, whose manifest parses and whose blobs
// are all present. It returns those, and an error joining what was wrong
// with the entries it left out (nil if none). Symlinks are not followed.
func (s *Store) List() ([]*Model, error) {
	var models []*Model
	var problems []error
	err := fs.WalkDir(s.root.FS(), manifestsDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == manifestsDir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			problems = append(problems, err)
			return nil
		}
		depth := strings.Count(p, "/")
		if strings.HasPrefix(e.Name(), ".") && p != manifestsDir {
			// Hidden entries: editors', or a write's temporary file.
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case e.IsDir() && depth < nameDepth:
			return nil
		case e.IsDir():
			problems = append(problems, fmt.Errorf("%s: %w: a directory where a manifest belongs", p, ErrInvalid))
			return fs.SkipDir
		case depth != nameDepth || !e.Type().IsRegular():
			problems = append(problems, fmt.Errorf("%s: %w: not a manifest file (%s)", p, ErrInvalid, e.Type()))
			return nil
		}
		parts := strings.Split(p, "/")
		n := Name{Host: parts[1], Namespace: parts[2], Model: parts[3], Tag: parts[4]}
		if m, err := s.Read(n); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", p, err))
		} else {
			models = append(models, m)
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err)
	}
	return models, errors.Join(problems...)
}

// HasBlob reports whether the store holds blob d as a regular file of
// size bytes that hashes to d. It reads the whole file.
func (s *Store) HasBlob(d digest.Digest, size int64) (bool, error) {
	if err := s.blobPresent(ocispec.Descriptor{Digest: d, Size: size, MediaType: "-"}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	f, err := s.root.OpenFile(blobName(d), os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("ollama store: blob %s: %w", d, err)
	}
	return "sha256:"+hex.EncodeToString(h.Sum(nil)) == string(d), nil
}

// WriteBlob writes blob d of size bytes from r, unless the store already
// holds it (HasBlob). The bytes go to a temporary file that gets the blob's
// name only once they are size long and hash to d (ErrMismatch otherwise,
// and nothing is left). It refuses to fill the disk's reserve
// (store.ErrNoSpace).
func (s *Store) WriteBlob(d digest.Digest, size int64, r io.Reader) error {
	if err := CheckDigest(d); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w blob %s: size %d", ErrInvalid, d, size)
	}
	if ok, err := s.HasBlob(d, size); err != nil || ok {
		return err
	}
	if err := fsutil.CheckRoom(s.dir, uint64(size)); err != nil {
		return fmt.Errorf("ollama store: %w", err)
	}
	return s.writeAtomic(blobName(d), func(w io.Writer) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, size+1))
		if err != nil {
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != size || got != string(d) {
			return fmt.Errorf("blob %s: %w: got %d bytes hashing to %s, want %d", d, ErrMismatch, n, got, size)
		}
		return nil
	})
}

// WriteManifest writes data as the manifest of model n, atomically, once
// it parses and every blob it names is in the store as a regular file of
// the declared size. A manifest already there for n is replaced.
func (s *Store) WriteManifest(n Name, data []byte) error {
	if err := n.Validate(); err != nil {
		return err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return err
	}
	for _, d := range m.Blobs() {
		if err := s.blobPresent(d); err != nil {
			return fmt.Errorf("ollama model %s: %w", n, err)
		}
	}
	p := n.manifestPath()
	if err := s.root.MkdirAll(path.Dir(p), dirPerm); err != nil {
		return fmt.Errorf("ollama store: %w", err)
	}
	if err := s.noLinks(path.Dir(p)); err != nil {
		return err
	}
	return s.writeAtomic(p, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// BlobOpener opens a blob's content for WriteModel.
type BlobOpener func(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error)

// WriteModel writes model n into the store: every blob its manifest names
// that the store does not hold yet (through open, verified), then the
// manifest. Until the manifest is written Ollama does not see the model;
// a failure leaves at most some complete, verified blobs behind.
func (s *Store) WriteModel(ctx context.Context, n Name, manifest []byte, open BlobOpener) error {
	if err := n.Validate(); err != nil {
		return err
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return err
	}
	for _, d := range m.Blobs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ok, err := s.HasBlob(d.Digest, d.Size); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.copyBlob(ctx, d, open); err != nil {
			return fmt.Errorf("ollama model %s: %w", n, err)
		}
	}
	return s.WriteManifest(n, manifest)
}

func (s *Store) copyBlob(ctx context.Context, d ocispec.Descriptor, open BlobOpener) error {
	rc, err := open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.WriteBlob(d.Digest, d.Size, rc)
}

// writeAtomic writes the file name (slash-separated, below the store)
// through a temporary file in blobs/: fill, fsync, rename over name, fsync
// name's directory. A fill that fails leaves nothing behind.
func (s *Store) writeAtomic(name string, fill func(io.Writer) error) error {
	if err := s.root.MkdirAll(blobsDir, dirPerm); err != nil {
		return fmt.Errorf("ollama store: %w", err)
	}
	tmp, err := s.createTemp()
	if err != nil {
		return fmt.Errorf("ollama store: %w", err)
	}
	tmpName := blobsDir + "/" + filepath.Base(tmp.Name())
	done := false
	defer func() {
		if !done {
			tmp.Close()
			s.root.Remove(tmpName)
		}
	}()
	if err := fill(tmp); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", store.ErrNoSpace, err)
		}
		return fmt.Errorf("ollama store: %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("ollama store: %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ollama store: %s: %w", name, err)
	}
	if err := s.root.Rename(tmpName, name); err != nil {
		return fmt.Errorf("ollama store: %s: %w", name, err)
	}
	done = true
	return s.syncDir(path.Dir(name))
}

// createTemp makes a new temporary file in blobs/.
func (s *Store) createTemp() (*os.File, error) {
	for range 10 {
		name := blobsDir + "/" + tmpPrefix + rand.Text()
		f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, filePerm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, errors.New("no unused temporary file name in blobs/")
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return fmt.Errorf("ollama store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ollama store: sync %s: %w", dir, err)
	}
	return nil
}
