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

// RecordVersion is the name record format version.
const RecordVersion = 1

// recordDomain separates record signatures from any other use of the key.
const recordDomain = "allmende name record v1\x00"

// Record is a signed statement by a publisher: "name at revision is the
// manifest with this CID", with a sequence number (higher wins) and an
// expiry.
type Record struct {
	Version  int       `json:"v"`
	Name     string    `json:"name"`
	Revision string    `json:"revision"`
	Manifest string    `json:"manifest"`
	Seq      uint64    `json:"seq"`
	Expires  time.Time `json:"expires"`
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

// Sign fills in Publisher and Signature with sk.
func (r *Record) Sign(sk crypto.PrivKey) error {
	id, err := KeyID(sk.GetPublic())
	if err != nil {
		return err
	}
	r.Version, r.Publisher = RecordVersion, id
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
	if r.Version != RecordVersion {
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
