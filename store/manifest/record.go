package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multibase"
)

// Record errors, checked with errors.Is.
var (
	// ErrBadSignature means a record's signature does not verify: it was
	// altered after signing, or signed by another key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrExpired means a record's validity has ended.
	ErrExpired = errors.New("record expired")
)

// Name record format versions. A record is written as version 1 unless it
// carries Kind and Commit, which only version 2 has; so records that do
// not need them stay readable by nodes that know version 1 only.
const (
	// RecordVersion is the first format: name@revision → manifest.
	RecordVersion = 1
	// RecordVersionBranch adds Kind and Commit: "the branch name@revision
	// of this kind is at commit Commit, whose manifest is Manifest", what a
	// mirror signs for the branch a client asked for (docs/governance.md).
	RecordVersionBranch = 2
)

// recordDomain separates record signatures from any other use of the key.
// Both versions sign under it: the version field is part of what is signed.
const recordDomain = "allmende name record v1\x00"

// Record is a signed statement by a publisher: "name at revision is the
// manifest with this CID", with a sequence number (higher wins) and an
// expiry. A version 2 record also names the repository's kind and the
// commit the revision was at, so a record for a branch moves (with a
// higher sequence number) when the branch moves.
type Record struct {
	Version  int    `json:"v"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Manifest string `json:"manifest"`
	// Kind (model or dataset) and Commit (40 hex digits) are set in, and
	// only in, version 2 records.
	Kind    string    `json:"kind,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Seq     uint64    `json:"seq"`
	Expires time.Time `json:"expires"`
	// Publisher is the publisher's key ID (see KeyID).
	Publisher string `json:"publisher"`
	Signature []byte `json:"sig,omitempty"`
}

// KeyID is the printable ID of a publisher key: its libp2p-key CID in
// base36, the form IPNS names take (k51...).
func KeyID(pub crypto.PubKey) (string, error) {
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.ToCid(id).Encode(multibase.MustNewEncoder(multibase.Base36)), nil
}

// ParseKeyID parses a publisher key ID (k51... or 12D3Koo...) and returns
// its canonical form and public key.
func ParseKeyID(s string) (string, crypto.PubKey, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return "", nil, fmt.Errorf("%w: publisher key %q: %v", ErrInvalid, s, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return "", nil, fmt.Errorf("%w: publisher key %q holds no public key: %v", ErrInvalid, s, err)
	}
	canon, err := KeyID(pub)
	return canon, pub, err
}

func (r *Record) signedBytes() ([]byte, error) {
	c := *r
	c.Signature = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte(recordDomain), b...), nil
}

// Sign fills in Version (2 if Kind or Commit is set, else 1), Publisher
// and Signature with sk.
func (r *Record) Sign(sk crypto.PrivKey) error {
	id, err := KeyID(sk.GetPublic())
	if err != nil {
		return err
	}
	r.Version, r.Publisher = RecordVersion, id
	if r.Kind != "" || r.Commit != "" {
		r.Version = RecordVersionBranch
	}
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	r.Signature, err = sk.Sign(msg)
	return err
}

// Encode returns the record's wire form.
func (r *Record) Encode() ([]byte, error) { return json.Marshal(r) }

// DecodeRecord parses a record and verifies its fields, its signature
// against the publisher key it names, and its expiry at now.
func DecodeRecord(data []byte, now time.Time) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes, at most %d", ErrInvalid, len(data), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: record: %v", ErrInvalid, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	_, pub, err := ParseKeyID(r.Publisher)
	if err != nil {
		return nil, err
	}
	msg, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	if ok, err := pub.Verify(msg, r.Signature); err != nil || !ok {
		return &r, fmt.Errorf("record for %s@%s by %s: %w", r.Name, r.Revision, r.Publisher, ErrBadSignature)
	}
	if now.After(r.Expires) {
		return &r, fmt.Errorf("record for %s@%s by %s: %w on %s", r.Name, r.Revision, r.Publisher, ErrExpired, r.Expires.Format(time.RFC3339))
	}
	return &r, nil
}

// MaxRecordSize bounds an encoded record.
const MaxRecordSize = 8 << 10

// MaxSeq is the highest sequence number a record may carry: a record at
// the top of the range could never be superseded by a later one.
const MaxSeq = math.MaxUint64 - 1

func (r *Record) validate() error {
	switch {
	case r.Version == RecordVersion && (r.Kind != "" || r.Commit != ""):
		return fmt.Errorf("%w: a version %d record carries no kind or commit", ErrInvalid, RecordVersion)
	case r.Version == RecordVersionBranch && r.Kind != KindModel && r.Kind != KindDataset:
		return fmt.Errorf("%w: record kind %q, want model or dataset", ErrInvalid, r.Kind)
	case r.Version == RecordVersionBranch && !hex40RE.MatchString(r.Commit):
		return fmt.Errorf("%w: record commit %q is not 40 hex digits", ErrInvalid, r.Commit)
	case r.Version != RecordVersion && r.Version != RecordVersionBranch:
		return fmt.Errorf("%w: record version %d", ErrInvalid, r.Version)
	}
	if err := ValidName(r.Name); err != nil {
		return err
	}
	if err := ValidRevision(r.Revision); err != nil {
		return err
	}
	if _, err := cid.Decode(r.Manifest); err != nil {
		return fmt.Errorf("%w: record manifest %q: %v", ErrInvalid, r.Manifest, err)
	}
	if r.Seq > MaxSeq {
		return fmt.Errorf("%w: record sequence number %d leaves no room for a later record (at most %d)", ErrInvalid, r.Seq, uint64(MaxSeq))
	}
	return nil
}

// ErrMismatch means a record, or an attestation, does not describe the
// manifest it is checked against.
var ErrMismatch = errors.New("does not describe this manifest")

// Describes checks that r may stand for m: the same name; for a version 2
// record the same kind and commit; for a version 1 record a revision that
// is m's revision or commit. A version 2 record for a branch ("main")
// describes the manifest of the commit the branch was at, whatever
// revision that manifest was filed under.
func (r *Record) Describes(m *Manifest) error {
	switch {
	case r.Name != m.Name:
		return fmt.Errorf("record for %s: manifest is for %s: %w", r.Name, m.Name, ErrMismatch)
	case r.Version == RecordVersionBranch && r.Kind != m.Kind:
		return fmt.Errorf("record for a %s: manifest is of a %s: %w", r.Kind, m.Kind, ErrMismatch)
	case r.Version == RecordVersionBranch && r.Commit != m.Commit:
		return fmt.Errorf("record for %s@%s at commit %s: manifest is of commit %s: %w", r.Name, r.Revision, r.Commit, m.Commit, ErrMismatch)
	case r.Version != RecordVersionBranch && r.Revision != m.Revision && r.Revision != m.Commit:
		return fmt.Errorf("record for %s@%s: manifest is for %s@%s: %w", r.Name, r.Revision, m.Name, m.Revision, ErrMismatch)
	}
	return nil
}

// NextSeq is the sequence number for a new record that replaces prev (nil
// if there is none): the time in nanoseconds, or one above prev's when
// that is higher, so a clock set back never makes a new record lose to an
// old one. A branch that moves gets a new record with NextSeq; so does one
// whose record is only renewed. It fails when prev leaves no room.
func NextSeq(prev *Record, now time.Time) (uint64, error) {
	seq := uint64(max(now.UnixNano(), 0))
	if prev == nil || prev.Seq < seq {
		return seq, nil
	}
	if prev.Seq >= MaxSeq {
		return 0, fmt.Errorf("%w: the last record's sequence number %d leaves no room for a later one", ErrInvalid, prev.Seq)
	}
	return prev.Seq + 1, nil
}
