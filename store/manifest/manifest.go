// Package manifest owns allmende's model manifest: the document that says
// what a named, versioned model or dataset is (kind, org/name, revision,
// commit id, license, source, and per file its path, size, sha256, git blob
// sha1 and CID), its deterministic encoding as a block with its own CID, and
// the validation of every path in it. It has no network code.
package manifest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Bounds on a decoded manifest, checked before anything is allocated or
// fetched on its behalf.
const (
	// MaxSize is the largest encoded manifest accepted (about 200,000
	// files). Manifests are stored as UnixFS files, so one larger than a
	// block spans several.
	MaxSize = 64 << 20
	// MaxFiles is the most files one manifest may list.
	MaxFiles = 100_000
	// MaxPathLen is the longest file path, in bytes.
	MaxPathLen = 1024
	// MaxPathDepth is the most segments a path may have.
	MaxPathDepth = 32
	// MaxFieldLen bounds name, revision, license and source.
	MaxFieldLen = 512
	// Version is the manifest format version this package writes.
	Version = 1
)

// LFSThreshold is the size from which a file is treated as a Git LFS file,
// as the Hugging Face Hub does (10 MiB); smaller files carry a git blob sha1.
const LFSThreshold = 10 << 20

// lfsPatterns are the file name suffixes the Hugging Face Hub's default
// .gitattributes stores in Git LFS whatever their size.
var lfsPatterns = []string{".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5",
	".joblib", ".lfs", ".mlmodel", ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet",
	".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar", ".safetensors", ".tar", ".tflite", ".tgz",
	".wasm", ".xz", ".zip", ".zst"}

// IsLFS reports whether a file of this path and size is a Git LFS file on
// the Hugging Face Hub: from LFSThreshold bytes up, or by its extension.
func IsLFS(p string, size int64) bool {
	if size >= LFSThreshold || strings.Contains(p, "tfevents") {
		return true
	}
	for _, ext := range lfsPatterns {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// Kinds of repositories.
const (
	KindModel   = "model"
	KindDataset = "dataset"
)

// Sentinel errors.
var (
	// ErrInvalid means a manifest or one of its paths breaks the rules.
	ErrInvalid = errors.New("invalid manifest")
)

// File is one file of a model.
type File struct {
	// Path is slash-separated, relative, validated by ValidatePath.
	Path string `json:"path"`
	Size uint64 `json:"size"`
	// SHA256 is the hex sha256 of the whole file.
	SHA256 string `json:"sha256"`
	// BlobSHA1 is the git blob sha1 (sha1("blob <len>\0"+content)), set for
	// files kept in git itself rather than LFS (see IsLFS).
	BlobSHA1 string `json:"blob_sha1,omitempty"`
	// CID is the root of the file's UnixFS DAG.
	CID string `json:"cid"`
	// Header describes the leading bytes holding a safetensors or GGUF
	// header, so a reader can fetch and verify just those.
	Header *Header `json:"header,omitempty"`
}

// Header is a file's format header: its format, length and sha256.
type Header struct {
	Format string `json:"format"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// LFS reports whether the file is presented as a Git LFS file.
func (f File) LFS() bool { return f.BlobSHA1 == "" }

// ETag is the Hugging Face ETag and cache blob name of the file.
func (f File) ETag() string {
	if f.LFS() {
		return f.SHA256
	}
	return f.BlobSHA1
}

// LFSPointer is the Git LFS pointer file that stands in git for an LFS
// file of that sha256 and size.
func LFSPointer(sha256 string, size uint64) string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256, size)
}

// GitOID is the git blob id of what git holds for the file: the content's
// blob sha1, or the blob sha1 of its LFS pointer.
func (f File) GitOID() string {
	if !f.LFS() {
		return f.BlobSHA1
	}
	return GitBlobSHA1([]byte(LFSPointer(f.SHA256, f.Size)))
}

// Manifest describes one revision of a model or dataset.
type Manifest struct {
	Version  int    `json:"version"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	// Commit is a 40-hex id for the revision (Hugging Face clients address
	// files by commit). Imports from a Hugging Face cache keep the hub's
	// commit; otherwise it is derived from the content (see ComputeCommit).
	Commit  string `json:"commit"`
	License string `json:"license,omitempty"`
	Source  string `json:"source,omitempty"`
	// Root is the CID of the UnixFS directory holding all files.
	Root  string `json:"root"`
	Files []File `json:"files"`
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)
	revRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)
	hex40RE  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	foldCase = cases.Fold()
)

// ValidName checks an org/name repository name: the Hugging Face Hub's
// rules (huggingface_hub's validate_repo_id), which refuse ".." and "--"
// in a name. "--" matters beyond the hub: the Hugging Face cache folder of
// org/name is models--org--name, so "a--b/c" and "a/b--c" would share one.
func ValidName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") || strings.Contains(name, "--") {
		return fmt.Errorf("%w: name %q must be org/name (letters, digits, . _ -; no \"..\" or \"--\")", ErrInvalid, name)
	}
	return nil
}

// ValidRevision checks a revision (branch or tag name or commit id).
func ValidRevision(rev string) error {
	if !revRE.MatchString(rev) || strings.Contains(rev, "..") || strings.HasSuffix(rev, "/") {
		return fmt.Errorf("%w: revision %q", ErrInvalid, rev)
	}
	return nil
}

// IsSHA256 reports whether s is 64 lower-case hex digits.
func IsSHA256(s string) bool { return hex64RE.MatchString(s) }

// ValidatePath checks one file path: relative, slash-separated, valid
// UTF-8, no empty, "." or ".." segments, no backslash or NUL, bounded.
func ValidatePath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: path %q: %s", ErrInvalid, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	case !utf8.ValidString(p):
		return bad("not UTF-8")
	case strings.ContainsAny(p, "\\\x00"):
		return bad("backslash or NUL")
	case strings.ContainsFunc(p, isControl):
		return bad("control character")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	}
	segs := strings.Split(p, "/")
	if len(segs) > MaxPathDepth {
		return bad(fmt.Sprintf("deeper than %d", MaxPathDepth))
	}
	for _, s := range segs {
		switch s {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("dot segment")
		}
	}
	return nil
}

// isControl reports an ASCII control character (C0 or DEL): legal in a
// POSIX file name, but a newline or an escape sequence in a name would
// reach logs, progress lines and terminals, and no hub file has one.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// foldKey is the key under which two paths count as the same file on a
// case-insensitive or normalising file system.
func foldKey(p string) string { return foldCase.String(norm.NFC.String(p)) }

// Validate checks every field and path of m and that no two paths collide
// after Unicode NFC normalisation and case folding, and that no file is
// also a directory of another.
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrInvalid, m.Version, Version)
	}
	if m.Kind != KindModel && m.Kind != KindDataset {
		return fmt.Errorf("%w: kind %q, want model or dataset", ErrInvalid, m.Kind)
	}
	if err := ValidName(m.Name); err != nil {
		return err
	}
	if err := ValidRevision(m.Revision); err != nil {
		return err
	}
	if !hex40RE.MatchString(m.Commit) {
		return fmt.Errorf("%w: commit %q is not 40 hex digits", ErrInvalid, m.Commit)
	}
	if len(m.License) > MaxFieldLen || len(m.Source) > MaxFieldLen {
		return fmt.Errorf("%w: license or source longer than %d bytes", ErrInvalid, MaxFieldLen)
	}
	if _, err := cid.Decode(m.Root); err != nil {
		return fmt.Errorf("%w: root %q: %v", ErrInvalid, m.Root, err)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("%w: %d files, at most %d", ErrInvalid, len(m.Files), MaxFiles)
	}
	return validateFiles(m.Files)
}

func validateFiles(files []File) error {
	seen := make(map[string]string, len(files))
	dirs := make(map[string]bool)
	for _, f := range files {
		if err := ValidatePath(f.Path); err != nil {
			return err
		}
		if err := validateFile(f); err != nil {
			return err
		}
		k := foldKey(f.Path)
		if other, ok := seen[k]; ok {
			return fmt.Errorf("%w: paths %q and %q collide", ErrInvalid, other, f.Path)
		}
		seen[k] = f.Path
		for i := range len(k) {
			if k[i] == '/' {
				dirs[k[:i]] = true
			}
		}
	}
	for k, p := range seen {
		if dirs[k] {
			return fmt.Errorf("%w: %q is both a file and a directory", ErrInvalid, p)
		}
	}
	return nil
}

func validateFile(f File) error {
	if !hex64RE.MatchString(f.SHA256) {
		return fmt.Errorf("%w: %s: sha256 %q", ErrInvalid, f.Path, f.SHA256)
	}
	if f.BlobSHA1 != "" && !hex40RE.MatchString(f.BlobSHA1) {
		return fmt.Errorf("%w: %s: blob sha1 %q", ErrInvalid, f.Path, f.BlobSHA1)
	}
	if _, err := cid.Decode(f.CID); err != nil {
		return fmt.Errorf("%w: %s: cid %q: %v", ErrInvalid, f.Path, f.CID, err)
	}
	if h := f.Header; h != nil && (!hex64RE.MatchString(h.SHA256) || h.Size > f.Size || len(h.Format) > MaxFieldLen) {
		return fmt.Errorf("%w: %s: header", ErrInvalid, f.Path)
	}
	return nil
}

// Encode returns the canonical encoding of m: compact JSON with fields in
// a fixed order and files sorted by path. Equal manifests encode to equal
// bytes, hence to the same CID.
func (m *Manifest) Encode() ([]byte, error) {
	c := *m
	c.Files = append([]File(nil), m.Files...)
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Path < c.Files[j].Path })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses and validates an encoded manifest. It refuses input that
// is larger than MaxSize, has unknown fields, or is not canonical.
func Decode(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	canon, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrInvalid)
	}
	return &m, nil
}

// Block encodes m as a single block: a CIDv1 with the raw codec and a
// sha2-256 multihash over the canonical encoding. For a manifest up to one
// chunk (1 MiB) this is also its UnixFS file, with the same CID; larger
// manifests are stored as UnixFS files (see node.storeManifest).
func (m *Manifest) Block() (blocks.Block, error) {
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: encodes to %d bytes, at most %d", ErrInvalid, len(data), MaxSize)
	}
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mh))
}

// ComputeCommit derives a stable 40-hex commit id from m's content: the
// sha1 of the canonical encoding with Commit empty. The same files, name
// and revision always give the same commit.
func (m *Manifest) ComputeCommit() (string, error) {
	c := *m
	c.Commit = ""
	data, err := c.Encode()
	if err != nil {
		return "", err
	}
	sum := sha1.Sum(append([]byte("allmende commit\x00"), data...))
	return hex.EncodeToString(sum[:]), nil
}

// Lookup returns the file at path.
func (m *Manifest) Lookup(path string) (File, bool) {
	for _, f := range m.Files {
		if f.Path == path {
			return f, true
		}
	}
	return File{}, false
}

// SHA256CID is the CID that stands for "a file whose whole-content sha256
// is sum": CIDv1, raw codec, sha2-256 multihash of sum. Nodes announce it
// so that a sha256 seen on Hugging Face can be found; it never addresses a
// block.
func SHA256CID(sum []byte) (cid.Cid, error) {
	mh, err := multihash.Encode(sum, multihash.SHA2_256)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}
