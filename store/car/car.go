// Package car owns CAR files (content-addressed archives, the format of
// Kubo's `ipfs dag export`): it writes a DAG held in the store as a CARv1
// stream, and reads a CAR (v1 or v2) into the store, checking every block
// against its CID before it is kept and telling which roots are then
// complete. A named model's CAR also carries its manifest and its
// publisher's signed name record (see docs/car.md for the layout).
//
// Both directions stream: nothing holds more than one block's bytes and a
// set of the CIDs seen, so a model larger than memory needs neither the
// memory nor a second copy on disk. The package knows nothing of names,
// trust or pins: it reports, and the node decides.
package car

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/multiformats/go-varint"
)

// Limits on what a CAR may hold, checked before anything is allocated.
const (
	// MaxBlockSize is the largest block accepted: the largest bitswap
	// moves (2 MiB), so whatever comes off a stick can also be served.
	// allmende's leaves are 1 MiB.
	MaxBlockSize = 2 << 20
	// MaxRoots is the most roots a CAR's header may list.
	MaxRoots = 256
	// MaxHeaderSize bounds the encoded header: MaxRoots roots of a
	// generous size.
	MaxHeaderSize = 128 << 10
	// MaxIdentitySize is the largest identity CID (data inlined in the
	// CID) accepted: boxo's verifcid default.
	MaxIdentitySize = 128
)

// carVersion is the version of the CARs written.
const carVersion = 1

// Sentinel errors, checked with errors.Is. A block whose bytes do not hash
// to its CID also wraps store.ErrCorrupt.
var (
	// ErrMalformed means the CAR breaks the format: a bad header, length
	// or CID, an oversized block, a hash function or codec this package
	// does not accept, a block that does not decode under its codec.
	ErrMalformed = errors.New("malformed CAR")
	// ErrTruncated means the CAR ends inside its header or a block.
	ErrTruncated = errors.New("truncated CAR")
	// ErrIncomplete means a root's DAG is not all in the store: the CAR
	// lacks blocks (or, on export, the store does).
	ErrIncomplete = errors.New("DAG incomplete")
)

// BlockError is a failure at one section of a CAR being read: the block
// at Offset (the byte offset of the section's length prefix in the CAR
// file) with CID (cid.Undef when the CID itself could not be read).
type BlockError struct {
	Offset int64
	CID    cid.Cid
	Err    error
}

func (e *BlockError) Error() string {
	if e.CID.Defined() {
		return fmt.Sprintf("CAR block %s at byte %d: %v", e.CID, e.Offset, e.Err)
	}
	return fmt.Sprintf("CAR block at byte %d: %v", e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *BlockError) Unwrap() error { return e.Err }

// Progress is how far an export or import has got.
type Progress struct {
	// Bytes of CAR written (export) or read (import).
	Bytes int64
	// Blocks written or read.
	Blocks int64
}

// encodeHeader returns a CARv1 header for roots, with its length prefix:
// the DAG-CBOR map {roots, version}, as go-car writes it.
func encodeHeader(roots []cid.Cid) ([]byte, error) {
	nd, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "roots", qp.List(int64(len(roots)), func(la datamodel.ListAssembler) {
			for _, r := range roots {
				qp.ListEntry(la, qp.Link(cidlink.Link{Cid: r}))
			}
		}))
		qp.MapEntry(ma, "version", qp.Int(carVersion))
	})
	if err != nil {
		return nil, fmt.Errorf("build CAR header: %w", err)
	}
	var body bytes.Buffer
	if err := dagcbor.Encode(nd, &body); err != nil {
		return nil, fmt.Errorf("encode CAR header: %w", err)
	}
	out := varint.ToUvarint(uint64(body.Len()))
	return append(out, body.Bytes()...), nil
}

// writeSection writes one block: its length prefix, CID and data.
func writeSection(w io.Writer, c cid.Cid, data []byte) (int64, error) {
	cb := c.Bytes()
	prefix := varint.ToUvarint(uint64(len(cb) + len(data)))
	n := int64(len(prefix) + len(cb) + len(data))
	for _, b := range [][]byte{prefix, cb, data} {
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// cidSet remembers CIDs compactly: by the SHA-256 of the CID's bytes,
// 32 bytes of key whatever the CID's length, with no allocation per
// entry. With a Go map's slack that is 40 to 80 bytes per CID, about
// 8 MB for the 100,000 blocks of a 100 GiB model in 1 MiB leaves.
type cidSet map[[sha256.Size]byte]struct{}

// add adds c and reports whether it was new.
func (s cidSet) add(c cid.Cid) bool {
	k := sha256.Sum256(c.Bytes())
	if _, ok := s[k]; ok {
		return false
	}
	s[k] = struct{}{}
	return true
}

func (s cidSet) has(c cid.Cid) bool {
	_, ok := s[sha256.Sum256(c.Bytes())]
	return ok
}

func (s cidSet) remove(c cid.Cid) { delete(s, sha256.Sum256(c.Bytes())) }
