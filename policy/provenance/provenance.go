// Package provenance owns allmende's provenance attestations: a small,
// versioned, signed statement "the manifest with this CID is upstream
// repository X (kind, name) at commit Y, with files of these sizes and
// sha256", made by the node that filled it (docs/governance.md). It
// encodes, decodes, signs and verifies them, checks one against a
// manifest, and keeps them in a folder. It has no network code.
package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// Version is the attestation format version this package writes and reads.
const Version = 1

// domain separates attestation signatures from any other use of the key
// (name records sign under their own).
const domain = "allmende attestation v1\x00"

// Limits, checked before anything is decoded.
const (
	// MaxSize bounds an encoded attestation: manifest.MaxFiles files of
	// about 320 bytes each at most.
	MaxSize = 32 << 20
	// MaxURLLen bounds the upstream URL.
	MaxURLLen = 512
	// MaxSkew is how far in the future an attestation's time may lie.
	MaxSkew = 24 * time.Hour
)

// Errors, checked with errors.Is.
var (
	// ErrInvalid means an attestation breaks the format's rules.
	ErrInvalid = errors.New("invalid attestation")
	// ErrBadSignature means the signature does not verify against the
	// signer named: altered after signing, or signed by another key.
	ErrBadSignature = errors.New("attestation signature does not verify")
	// ErrMismatch means the attestation does not describe the manifest it
	// is checked against.
	ErrMismatch = manifest.ErrMismatch
)

// Upstream names where the attested revision came from.
type Upstream struct {
	// URL is the upstream's base URL (e.g. https://huggingface.co).
	URL string `json:"url"`
	// Kind is model or dataset; Name is org/name.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Revision is the revision asked for (e.g. main), if not the commit.
	Revision string `json:"revision,omitempty"`
	// Commit is the upstream's 40-hex commit id.
	Commit string `json:"commit"`
}

// File is one attested file: what the upstream served at that path.
type File struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// Attestation is one signed statement. Fields appear in this order in
// the canonical encoding; Files are sorted by path.
type Attestation struct {
	Version int `json:"v"`
	// Manifest is the CID of the manifest attested.
	Manifest string   `json:"manifest"`
	Upstream Upstream `json:"upstream"`
	Files    []File   `json:"files"`
	// Signer is the signing key's ID (manifest.KeyID: k51...).
	Signer string `json:"signer"`
	// Time is when it was signed (UTC, whole seconds).
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig,omitempty"`
}

// New returns the unsigned attestation that the manifest m, stored as mc,
// is up's revision, listing m's files.
func New(mc cid.Cid, m *manifest.Manifest, up Upstream, now time.Time) *Attestation {
	a := &Attestation{Version: Version, Manifest: mc.String(), Upstream: up,
		Time: now.UTC().Truncate(time.Second), Files: make([]File, len(m.Files))}
	for i, f := range m.Files {
		a.Files[i] = File{Path: f.Path, Size: f.Size, SHA256: f.SHA256}
	}
	sortFiles(a.Files)
	return a
}

func sortFiles(fs []File) { sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path }) }

// Sign sets Signer and Signature with sk, after checking every field.
func (a *Attestation) Sign(sk crypto.PrivKey) error {
	id, err := manifest.KeyID(sk.GetPublic())
	if err != nil {
		return err
	}
	a.Version, a.Signer = Version, id
	sortFiles(a.Files)
	if err := a.validate(); err != nil {
		return err
	}
	msg, err := a.signedBytes()
	if err != nil {
		return err
	}
	a.Signature, err = sk.Sign(msg)
	return err
}

// Encode returns the canonical encoding: compact JSON, fields in a fixed
// order, files sorted by path, no HTML escaping. Equal attestations encode
// to equal bytes.
func (a *Attestation) Encode() ([]byte, error) {
	c := *a
	c.Files = append([]File(nil), a.Files...)
	sortFiles(c.Files)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("encode attestation: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (a *Attestation) signedBytes() ([]byte, error) {
	c := *a
	c.Signature = nil
	b, err := c.Encode()
	if err != nil {
		return nil, err
	}
	return append([]byte(domain), b...), nil
}

// Decode parses an attestation and verifies its fields and its signature
// against the signer it names. It refuses input larger than MaxSize,
// with unknown fields, not in canonical form, or signed more than MaxSkew
// after now. It says nothing of whether the signer is trusted.
func Decode(data []byte, now time.Time) (*Attestation, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a Attestation
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the attestation", ErrInvalid)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	if canon, err := a.Encode(); err != nil || !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrInvalid)
	}
	if a.Time.After(now.Add(MaxSkew)) {
		return nil, fmt.Errorf("%w: signed at %s, in the future", ErrInvalid, a.Time.Format(time.RFC3339))
	}
	if err := a.verify(); err != nil {
		return &a, err
	}
	return &a, nil
}

// verify checks the signature against the signer's key.
func (a *Attestation) verify() error {
	_, pub, err := manifest.ParseKeyID(a.Signer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	msg, err := a.signedBytes()
	if err != nil {
		return err
	}
	if ok, err := pub.Verify(msg, a.Signature); err != nil || !ok {
		return fmt.Errorf("attestation of %s by %s: %w", a.Manifest, a.Signer, ErrBadSignature)
	}
	return nil
}

func (a *Attestation) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case a.Version != Version:
		return bad("version %d, want %d", a.Version, Version)
	case len(a.Files) > manifest.MaxFiles:
		return bad("%d files, at most %d", len(a.Files), manifest.MaxFiles)
	case a.Time.IsZero() || !a.Time.Equal(a.Time.UTC().Truncate(time.Second)) || a.Time.Location() != time.UTC:
		return bad("time %s: want UTC in whole seconds", a.Time)
	}
	if c, err := cid.Decode(a.Manifest); err != nil || c.String() != a.Manifest {
		return bad("manifest %q is not a CID in its canonical form", a.Manifest)
	}
	if err := a.Upstream.validate(); err != nil {
		return err
	}
	for i, f := range a.Files {
		if err := manifest.ValidatePath(f.Path); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if !manifest.IsSHA256(f.SHA256) {
			return bad("%s: sha256 %q", f.Path, f.SHA256)
		}
		if i > 0 && a.Files[i-1].Path >= f.Path {
			return bad("files not sorted, or %s twice", f.Path)
		}
	}
	return nil
}

func (u Upstream) validate() error {
	if len(u.URL) > MaxURLLen {
		return fmt.Errorf("%w: upstream URL longer than %d bytes", ErrInvalid, MaxURLLen)
	}
	p, err := url.Parse(u.URL)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil {
		return fmt.Errorf("%w: upstream URL %q: want http(s)://host[/path]", ErrInvalid, u.URL)
	}
	if u.Kind != manifest.KindModel && u.Kind != manifest.KindDataset {
		return fmt.Errorf("%w: upstream kind %q, want model or dataset", ErrInvalid, u.Kind)
	}
	if err := manifest.ValidName(u.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if u.Revision != "" {
		if err := manifest.ValidRevision(u.Revision); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if len(u.Commit) != 40 || !isLowerHex(u.Commit) {
		return fmt.Errorf("%w: upstream commit %q is not 40 hex digits", ErrInvalid, u.Commit)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Describes checks that a attests the manifest m stored as mc: the same
// CID, kind, name and commit, and exactly the same files with the same
// sizes and sha256. A manifest's CID covers its bytes, so the CID alone
// would do for a manifest fetched by it; the rest catches a manifest that
// was decoded from elsewhere, and says what differs.
func (a *Attestation) Describes(mc cid.Cid, m *manifest.Manifest) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("attestation by %s: "+format+": %w", append(append([]any{a.Signer}, args...), ErrMismatch)...)
	}
	ac, err := cid.Decode(a.Manifest)
	switch {
	case err != nil || !ac.Equals(mc):
		return mismatch("it is for manifest %s, not %s", a.Manifest, mc)
	case a.Upstream.Kind != m.Kind || a.Upstream.Name != m.Name:
		return mismatch("it is for the %s %s, not the %s %s", a.Upstream.Kind, a.Upstream.Name, m.Kind, m.Name)
	case a.Upstream.Commit != m.Commit:
		return mismatch("it is for commit %s, not %s", a.Upstream.Commit, m.Commit)
	case len(a.Files) != len(m.Files):
		return mismatch("it lists %d files, the manifest %d", len(a.Files), len(m.Files))
	}
	want := make(map[string]File, len(a.Files))
	for _, f := range a.Files {
		want[f.Path] = f
	}
	for _, f := range m.Files {
		w, ok := want[f.Path]
		switch {
		case !ok:
			return mismatch("it does not list %s", f.Path)
		case w.Size != f.Size || w.SHA256 != f.SHA256:
			return mismatch("%s: it says %d bytes with sha256 %s, the manifest %d bytes with sha256 %s", f.Path, w.Size, w.SHA256, f.Size, f.SHA256)
		}
	}
	return nil
}
